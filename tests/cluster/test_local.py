"""The ``local`` cluster: real worker processes on this machine."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import psutil
import pytest

from sparkles_core.client import Client
from sparkles_core.cluster.base import ClusterContext
from sparkles_core.cluster.local import LocalCluster
from sparkles_core.models import (
    JobSpec,
    NodeClass,
    TaskSpec,
    TaskStatus,
)
from tests.conftest import wait_for


def process_gone(pid: int) -> bool:
    """Return True if the process ended (a zombie awaiting its reaper counts)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


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
