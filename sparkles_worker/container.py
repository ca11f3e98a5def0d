"""Run a task's command inside its job's image with ``docker run``.

The worker stays on the node (or in its own container, talking to the
node's Docker daemon through the mounted socket) and starts one container
per attempt:

- the task's folder is bind-mounted at the same path, so the paths the
  worker staged are the paths the command sees, and a worker that itself
  runs in a container hands the daemon a path that exists on the node;
- the container runs as the worker's own user, so the worker can clean the
  folder afterwards (on a cloud node the worker is root, as in
  Sparklespray);
- ``--init`` puts a small init process first, so the command's children are
  reaped and a stop signal reaches the command even when it is ``sh``;
- the task's environment is passed by name (``--env KEY``) with the values
  in the ``docker`` client's own environment, so no value shows in a
  process listing.

Stopping the attempt signals the client's process group and also sends the
signal to the container by name with ``docker kill``: killing the client
alone would leave the container running.

The exit code is the container's; a command killed by a signal shows as
128 + the signal number, as Docker reports it. The resource usage recorded
is the client's, not the container's.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import signal
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from sparkles_core.errors import TaskRunError
from sparkles_worker import execute

__all__ = ["RUNTIMES", "ContainerRun", "container_name", "node_has_gpus", "start"]

logger = logging.getLogger(__name__)

RUNTIMES = ("docker",)

# The client's own settings that must reach it; the task's environment is
# added on top, and only the task's names are forwarded into the container.
_CLIENT_ENV = (
    "PATH",
    "HOME",
    "DOCKER_HOST",
    "DOCKER_CONFIG",
    "DOCKER_CONTEXT",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
)
# A stuck daemon must not hang the worker's stop path.
_KILL_TIMEOUT_S = 30.0
_UNSAFE_NAME = re.compile(r"[^a-zA-Z0-9_.-]")


@dataclass(frozen=True)
class ContainerRun:
    """One attempt of a task, to run in a container."""

    image: str
    command: str
    folder: Path
    cwd: Path
    env: Mapping[str, str]
    name: str
    gpus: bool = False
    runtime: str = "docker"
    uid: int = field(default_factory=os.getuid)
    gid: int = field(default_factory=os.getgid)

    def argv(self) -> list[str]:
        """Return the ``docker run`` command line for this attempt."""
        argv = [
            self.runtime,
            "run",
            "--rm",
            f"--name={self.name}",
            "--init",
            f"--user={self.uid}:{self.gid}",
            f"--volume={self.folder}:{self.folder}",
            f"--workdir={self.cwd}",
        ]
        argv += [f"--env={key}" for key in sorted(self.env)]
        if self.gpus:
            argv += ["--gpus=all"]
        return [*argv, self.image, "/bin/sh", "-c", self.command]


def container_name(task_id: str, attempt: int) -> str:
    """Return a container name unique to one attempt of a task."""
    return _UNSAFE_NAME.sub("-", f"sparkles-{task_id}-{attempt}")


def node_has_gpus(dev: Path = Path("/dev")) -> bool:
    """Return True if this node exposes NVIDIA devices."""
    return (dev / "nvidiactl").exists() or any(dev.glob("nvidia[0-9]*"))


def start(
    run: ContainerRun, task_id: str, log_path: Path, timeout: float | None
) -> execute.Running:
    """Start the attempt's container; its output goes to ``log_path``."""
    client = shutil.which(run.runtime)
    if client is None:
        raise TaskRunError(
            f"Task {task_id}: {run.runtime!r} is not on this node's PATH, so "
            f"the image {run.image!r} cannot run; install it or start the "
            "worker without --container-runtime.",
            task_id,
        )
    env = {key: os.environ[key] for key in _CLIENT_ENV if key in os.environ}
    env.update(run.env)
    argv = [client, *run.argv()[1:]]

    def forward(signum: signal.Signals) -> None:
        _kill(client, run.name, signum)

    logger.info("Task %s: running in image %s as %s", task_id, run.image, run.name)
    return execute.spawn(argv, run.cwd, log_path, env, timeout, forward)


def _kill(client: str, name: str, signum: signal.Signals) -> None:
    """Send ``signum`` to the container; it may already be gone."""
    argv = [client, "kill", f"--signal={signum.name}", name]
    logger.debug("Container %s: %s", name, argv)
    try:
        subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=_KILL_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        logger.warning("Container %s: could not send %s: %s", name, signum.name, exc)
