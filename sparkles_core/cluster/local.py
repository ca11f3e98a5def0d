"""The ``local`` cluster: worker processes on this machine.

Each node is one ``sparkles-worker consume`` process in its own session, so a
Ctrl-C at the terminal reaches the front end only, which then stops the
workers in order. On disk, under the state folder::

    nodes/<node-id>/         the worker's task folders, removed with the node
    logs/<node-id>.log       the worker's own log, kept for post-mortems
    cache/                   the node-level CAS cache, shared by all workers

A node's record carries its pid and process start time, so another process
(``sparkles status``) can tell a live worker from a reused pid. Since the
worker leads its own session, every process it starts (the task's command
runs in a process group of its own, but in the same session) carries the
worker's pid as its session id: when a node is stopped, or found to have
died, whatever is left of its session is killed, so a worker that died
mid-task leaves no command running.

A job that names an image runs through the container runtime: its workers
get ``--container-runtime=docker``. That needs a container engine that
answers here (``docker info`` succeeds); without one the job is refused
before it is stored, rather than run on this machine outside its image.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Collection, Sequence
from pathlib import Path

import psutil

from sparkles_core.cluster.base import ClusterContext, Provisioner, WorkerLaunch
from sparkles_core.errors import ClusterError
from sparkles_core.models import JobSpec, NodeClass, NodeReq, NodeStatus

__all__ = ["CONTAINER_RUNTIME", "LocalCluster", "container_engine_answers"]

logger = logging.getLogger(__name__)

# Long enough for a worker to stop its command and hand the task back,
# short enough that Ctrl-C feels immediate.
STOP_GRACE_S = 10.0
# The runtime local workers run images with; the worker offers only this one.
CONTAINER_RUNTIME = "docker"
# A daemon that is up answers in well under a second; a hung one must not
# hang the submission.
ENGINE_PROBE_TIMEOUT_S = 15.0


class LocalCluster(Provisioner):
    """Start, watch and stop worker processes on this machine."""

    def __init__(self, context: ClusterContext) -> None:
        self._store = context.store
        self._home = context.home
        self._procs: dict[str, subprocess.Popen[bytes]] = {}
        self._engine_answers: bool | None = None
        self._env = _worker_env(context.service_account_key)

    def check_job(self, spec: JobSpec) -> None:
        """Refuse a job that names an image when no container engine answers."""
        if spec.image is not None:
            self._check_engine(spec.image)

    def _check_engine(self, image: str) -> None:
        if self._engine_answers is None:
            self._engine_answers = container_engine_answers()
        if not self._engine_answers:
            raise ClusterError(
                f"The job asks for image {image!r}, but no container engine "
                f"answers on this machine ('{CONTAINER_RUNTIME} info' failed); "
                "start Docker, or leave out --image and the default_image key.",
                "local",
            )

    def worker_argv(self, launch: WorkerLaunch, node_id: str) -> list[str]:
        """Return the command line that starts the worker of a node."""
        argv = [
            sys.executable,
            "-m",
            "sparkles_worker",
            *launch.worker_args(node_id),
            f"--work-dir={self._home / 'nodes' / node_id}",
            f"--cache-dir={self._home / 'cache'}",
        ]
        if launch.image is not None:
            self._check_engine(launch.image)
            argv.append(f"--container-runtime={CONTAINER_RUNTIME}")
        return argv

    def add_nodes(
        self, launch: WorkerLaunch, count: int, node_class: NodeClass
    ) -> list[NodeReq]:
        """Start ``count`` worker processes for the cluster."""
        return [self._start(launch, node_class) for _ in range(count)]

    def _start(self, launch: WorkerLaunch, node_class: NodeClass) -> NodeReq:
        node_id = f"{launch.cluster_id}-{uuid.uuid4().hex[:8]}"
        work_dir = self._home / "nodes" / node_id
        log_path = self._home / "logs" / f"{node_id}.log"
        argv = self.worker_argv(launch, node_id)
        logger.debug("Node %s: starting %s", node_id, argv)
        try:
            work_dir.mkdir(parents=True, exist_ok=True)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with log_path.open("ab") as log:
                proc = subprocess.Popen(
                    argv,
                    cwd=work_dir,
                    env=self._env,
                    stdin=subprocess.DEVNULL,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
        except OSError as exc:
            raise ClusterError(
                f"Could not start a worker process: {exc}", launch.cluster_id
            ) from exc
        self._procs[node_id] = proc
        node = self._record(node_id, launch, node_class, proc.pid)
        logger.info("Node %s: worker started as pid %d", node_id, proc.pid)
        return node

    def _record(
        self, node_id: str, launch: WorkerLaunch, node_class: NodeClass, pid: int
    ) -> NodeReq:
        now = time.time()
        node = NodeReq(
            id=node_id,
            cluster=launch.cluster_id,
            node_class=node_class,
            status=NodeStatus.RUNNING,
            instance_name=f"pid {pid}",
            job_id=launch.job_id,
            created=now,
            updated=now,
            detail={"pid": str(pid), "started": f"{_start_time(pid):.3f}"},
        )
        self._store.put_node(node)
        return node

    def refresh(self, cluster_id: str) -> list[NodeReq]:
        """Return the cluster's nodes, marking those whose process has ended."""
        nodes = self._store.list_nodes(cluster_id)
        changed = []
        for index, node in enumerate(nodes):
            status = self._status(node)
            if status is not node.status:
                nodes[index] = node.model_copy(
                    update={"status": status, "updated": time.time()}
                )
                changed.append(nodes[index])
        # A dead worker's command lives on.
        _kill_sessions([node for node in changed if not node.status.alive])
        for node in changed:
            self._store.put_node(node)
        return nodes

    def _status(self, node: NodeReq) -> NodeStatus:
        if not node.status.alive:
            return node.status
        proc = self._procs.get(node.id)
        if proc is not None:
            code = proc.poll()
            if code is None:
                return NodeStatus.RUNNING
            return NodeStatus.COMPLETE if code == 0 else NodeStatus.FAILED
        return NodeStatus.RUNNING if _is_alive(node) else NodeStatus.COMPLETE

    def delete_nodes(self, nodes: list[NodeReq]) -> None:
        """Stop the nodes' workers (SIGTERM, then SIGKILL) and drop them."""
        live = [node for node in nodes if _is_alive(node)]
        for node in live:
            _signal(node, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for node in live:
            self._wait(node, deadline)
        for node in nodes:
            proc = self._procs.pop(node.id, None)
            if proc is not None:
                proc.wait()  # reap it; it was signalled or had already ended
        _kill_sessions(nodes)
        for node in nodes:
            shutil.rmtree(self._home / "nodes" / node.id, ignore_errors=True)
        self._store.delete_nodes(node.id for node in nodes)

    def _wait(self, node: NodeReq, deadline: float) -> None:
        proc = self._procs.get(node.id)
        timeout = max(0.0, deadline - time.monotonic())
        try:
            if proc is not None:
                proc.wait(timeout)
            else:
                psutil.Process(int(node.detail["pid"])).wait(timeout)
        except (subprocess.TimeoutExpired, psutil.TimeoutExpired):
            logger.warning("Node %s: did not stop in time; killing it", node.id)
            # The worker goes first: were its command killed first, it could
            # still record the kill as the task's result. The command goes
            # with the rest of the session, once every node has been waited.
            _signal(node, signal.SIGKILL)
            if proc is not None:
                proc.wait()
        except psutil.NoSuchProcess:
            pass


def _worker_env(key: Path | None) -> dict[str, str] | None:
    """Return the environment of local workers: this one, acting with ``key``.

    A worker opens cloud backends (a datastore:// store, say) on its own;
    with a configured service-account key it must act as that account too,
    which the Google clients learn from GOOGLE_APPLICATION_CREDENTIALS.
    """
    if key is None:
        return None
    return {**os.environ, "GOOGLE_APPLICATION_CREDENTIALS": str(key)}


def _start_time(pid: int) -> float:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return 0.0


def _is_alive(node: NodeReq) -> bool:
    """Return True if the node's worker process is still the one we started."""
    try:
        process = psutil.Process(int(node.detail["pid"]))
        same = abs(process.create_time() - float(node.detail["started"])) < 0.01
        return same and process.status() != psutil.STATUS_ZOMBIE
    except (psutil.Error, KeyError, ValueError):
        return False


def _signal(node: NodeReq, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(int(node.detail["pid"]), signum)


def _kill_sessions(nodes: Sequence[NodeReq]) -> None:
    """SIGKILL what is left of the sessions the nodes' workers led."""
    sessions = {sid: node for node in nodes if (sid := _session_id(node)) is not None}
    for sid, leftovers in _session_members(sessions).items():
        for process in leftovers:
            with contextlib.suppress(psutil.Error):
                process.kill()
        pids = ", ".join(str(process.pid) for process in leftovers)
        node_id = sessions[sid].id
        logger.warning("Node %s: killed processes it left behind: %s", node_id, pids)


def _session_id(node: NodeReq) -> int | None:
    """Return the id of the session the node's worker led, if still its own."""
    try:
        sid = int(node.detail["pid"])
    except (KeyError, ValueError):
        return None
    # A reused pid means the session id was free to be taken: no process of
    # ours has it.
    return None if _pid_reused(node, sid) else sid


def _session_members(sids: Collection[int]) -> dict[int, list[psutil.Process]]:
    """Return the processes, other than their leaders, of these sessions.

    One walk of the process table serves every session: stopping a cluster
    of many nodes would otherwise walk it once per node.
    """
    members: dict[int, list[psutil.Process]] = {}
    if not sids:
        return members
    for process in psutil.process_iter(["status"]):
        if process.pid in sids or process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        with contextlib.suppress(OSError):
            sid = os.getsid(process.pid)
            if sid in sids:
                members.setdefault(sid, []).append(process)
    return members


def _pid_reused(node: NodeReq, pid: int) -> bool:
    """Return True if ``pid`` now belongs to a process other than the worker."""
    try:
        started = psutil.Process(pid).create_time()
    except psutil.Error:
        return False
    return abs(started - float(node.detail.get("started", "0"))) >= 0.01


def container_engine_answers(runtime: str = CONTAINER_RUNTIME) -> bool:
    """Return True if the container engine answers here (``docker info``)."""
    client = shutil.which(runtime)
    if client is None:
        return False
    argv = [client, "info"]
    logger.debug("Probing the container engine: %s", argv)
    try:
        done = subprocess.run(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            timeout=ENGINE_PROBE_TIMEOUT_S,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0
