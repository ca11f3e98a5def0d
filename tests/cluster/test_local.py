"""The ``local`` cluster: real worker processes on this machine."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from sparkles_core.client import Client
from sparkles_core.cluster import local
from sparkles_core.cluster.base import ClusterContext, WorkerLaunch
from sparkles_core.cluster.local import LocalCluster
from sparkles_core.errors import ClusterError
from sparkles_core.models import (
    JobSpec,
    MachineSpec,
    NodeClass,
    NodeStatus,
    TaskSpec,
    TaskStatus,
)
from tests.conftest import wait_for

IMAGE = "example.org/tools/aligner:2"
BIN = Path(sys.executable).parent

# A ``docker`` that answers ``info`` and runs ``run``'s command itself,
# recording each call.
STAND_IN = """#!{python}
import json, os, sys
args = sys.argv[1:]
with open({log!r}, "a") as log:
    log.write(json.dumps(args) + "\\n")
if args[0] == "run":
    os.chdir(next(a.split("=", 1)[1] for a in args if a.startswith("--workdir=")))
    os.execv("/bin/sh", args[args.index("/bin/sh") :])
"""


def process_gone(pid: int) -> bool:
    """Return True if the process ended (a zombie awaiting its reaper counts)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def launch(image: str | None = None) -> WorkerLaunch:
    return WorkerLaunch("c-1", "sqlite:///s.db", "file:///st", MachineSpec(), image)


@pytest.fixture
def no_engine(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Point ``docker`` at a daemon socket where nothing listens."""
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'no-daemon.sock'}")


@pytest.fixture
def stand_in_docker(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Put a stand-in ``docker`` first on PATH; return the log of its calls."""
    folder, log = tmp_path / "bin", tmp_path / "docker-calls.jsonl"
    folder.mkdir()
    script = folder / "docker"
    script.write_text(STAND_IN.format(python=sys.executable, log=str(log)))
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{folder}{os.pathsep}{os.environ['PATH']}")
    return log


# -- a worker that dies leaves nothing running -------------------------------


@pytest.mark.parametrize(
    "notice",
    ["refresh", "refresh-elsewhere", "stop"],
    ids=["refresh", "refresh-by-another-process", "stop-cluster"],
)
def test_dead_workers_command_is_killed_when_the_node_is_reaped(
    client: Client, tmp_path: Path, notice: str
) -> None:
    pids = tmp_path / "pids"
    command = f"echo $$ > {pids}; sleep 60 & echo $! >> {pids}; wait"
    job = client.submit(JobSpec(name="j", tasks=[TaskSpec(command=command)]), "j")
    provisioner = client.provisioner
    [node] = provisioner.add_nodes(client.launch_for(job), 1, NodeClass.STANDARD)
    wait_for(lambda: pids.exists() and len(pids.read_text().split()) == 2)
    command_pids = [int(pid) for pid in pids.read_text().split()]

    os.kill(int(node.detail["pid"]), signal.SIGKILL)
    if notice == "stop":
        provisioner.stop_cluster(job.cluster)
    else:
        looker = provisioner
        if notice == "refresh-elsewhere":
            context = ClusterContext("local", client.store, client.config.home)
            looker = LocalCluster(context)
        wait_for(lambda: not looker.refresh(job.cluster)[0].status.alive)

    # The kill is sent before refresh or stop returns; it lands a moment later.
    wait_for(lambda: all(process_gone(pid) for pid in command_pids), timeout=10)


@pytest.mark.parametrize("notice", ["refresh", "delete"])
def test_dead_workers_commands_are_found_in_one_walk_of_the_process_table(
    client: Client, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, notice: str
) -> None:
    tasks = [
        TaskSpec(command=f"sleep 60 & echo $! > {tmp_path / f'pid-{n}'}; wait")
        for n in range(3)
    ]
    job = client.submit(JobSpec(name="j", tasks=tasks, nodes=3), "j")
    provisioner = client.provisioner
    nodes = provisioner.add_nodes(client.launch_for(job), 3, NodeClass.STANDARD)
    pid_files = [tmp_path / f"pid-{n}" for n in range(3)]
    wait_for(lambda: all(f.exists() and f.read_text().strip() for f in pid_files))
    for node in nodes:
        os.kill(int(node.detail["pid"]), signal.SIGKILL)
    wait_for(lambda: all(process_gone(int(n.detail["pid"])) for n in nodes))
    walks = []
    walk = psutil.process_iter
    monkeypatch.setattr(
        psutil, "process_iter", lambda *a, **k: walks.append(1) or walk(*a, **k)
    )

    if notice == "refresh":
        assert not any(node.status.alive for node in provisioner.refresh(job.cluster))
    else:
        provisioner.delete_nodes(nodes)

    assert len(walks) == 1
    sleeps = [int(f.read_text()) for f in pid_files]
    wait_for(lambda: all(process_gone(pid) for pid in sleeps), timeout=10)


def test_stopped_node_leaves_its_task_pending_and_nothing_running(
    client: Client, tmp_path: Path
) -> None:
    pid_file = tmp_path / "pid"
    command = f"echo $$ > {pid_file}; exec sleep 60"
    job = client.submit(JobSpec(name="j", tasks=[TaskSpec(command=command)]), "j")
    provisioner = client.provisioner
    provisioner.add_nodes(client.launch_for(job), 1, NodeClass.STANDARD)
    wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "")

    provisioner.stop_cluster(job.cluster)

    task = client.store.get_task("j.1")
    assert task is not None and task.status is TaskStatus.PENDING
    assert process_gone(int(pid_file.read_text()))
    assert client.store.list_nodes(job.cluster) == []


# -- a job that names an image ------------------------------------------------


def test_image_job_is_refused_before_it_is_stored_without_an_engine(
    client: Client, no_engine: None
) -> None:
    spec = JobSpec(name="img", tasks=[TaskSpec(command="true")], image=IMAGE)

    with pytest.raises(ClusterError) as caught:
        client.submit(spec, "img")

    message = str(caught.value)
    assert IMAGE in message and "start Docker" in message
    assert "--image" in message
    assert client.store.list_jobs() == []


@pytest.mark.parametrize(
    "argv",
    [
        ["sparkles", "sub", "-n", "img", "-i", IMAGE, "--no-wait", "echo", "hi"],
        ["sparkles-run", "-n", "img", "-i", IMAGE, "echo", "hi"],
    ],
    ids=["sparkles-sub", "sparkles-run"],
)
def test_image_on_local_cluster_without_engine_is_one_line_and_no_job(
    client: Client, no_engine: None, argv: list[str]
) -> None:
    done = subprocess.run(
        [str(BIN / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=120
    )

    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if IMAGE in line]
    assert len(lines) == 1 and "start Docker" in lines[0], done.stderr
    assert client.store.list_jobs() == []


def test_image_job_gets_workers_that_run_it_through_docker(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "container_engine_answers", lambda: True)
    provisioner = LocalCluster(
        ClusterContext("local", client.store, client.config.home)
    )

    provisioner.check_job(JobSpec(name="img", tasks=[], image=IMAGE))
    with_image = provisioner.worker_argv(launch(IMAGE), "n-1")
    without = provisioner.worker_argv(launch(), "n-2")

    assert "--container-runtime=docker" in with_image
    assert not any(arg.startswith("--container-runtime") for arg in without)


def test_no_worker_starts_for_an_image_job_without_an_engine(
    client: Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(local, "container_engine_answers", lambda: False)
    provisioner = LocalCluster(
        ClusterContext("local", client.store, client.config.home)
    )

    with pytest.raises(ClusterError, match="start Docker"):
        provisioner.add_nodes(launch(IMAGE), 1, NodeClass.STANDARD)

    assert client.store.list_nodes() == []


def test_image_job_runs_its_command_through_the_container_runtime(
    client: Client, stand_in_docker: Path
) -> None:
    spec = JobSpec(
        name="img", tasks=[TaskSpec(command="echo inside > out.txt")], image=IMAGE
    )
    job = client.submit(spec, "img")
    client.provisioner.add_nodes(client.launch_for(job), 1, NodeClass.STANDARD)

    wait_for(lambda: client.tasks(job.id)[0].status is TaskStatus.COMPLETE, 60)

    [task] = client.tasks(job.id)
    assert task.succeeded
    calls = [json.loads(line) for line in stand_in_docker.read_text().splitlines()]
    assert ["info"] in calls
    [run] = [call for call in calls if call[0] == "run"]
    assert IMAGE in run and run[-1] == "echo inside > out.txt"
    nodes = client.provisioner.refresh(job.cluster)
    assert all(node.status is NodeStatus.RUNNING for node in nodes)
