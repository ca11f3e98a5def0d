"""``sparkles watch PATTERN``: several jobs at once, and whose nodes it stops."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from sparkles_core.client import Client
from sparkles_core.models import (
    Job,
    JobSpec,
    MachineSpec,
    NodeClass,
    NodeReq,
    NodeStatus,
    TaskSpec,
    TaskStatus,
)
from tests.cli.conftest import SPARKLES, Invoke, run_sparkles
from tests.conftest import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("plain_output")]

# Workers that outlive the watch by far, so that a node still up afterwards
# was kept by the watch and not merely slow to leave.
LINGER = ("-o", "worker_linger=120")


def store_job(
    client: Client,
    name: str,
    command: str,
    machine: str = "test-shared",
    labels: dict[str, str] | None = None,
) -> Job:
    """Store a one-task job on the cluster of ``machine`` without watching it."""
    spec = JobSpec(
        name=name,
        tasks=[TaskSpec(command=command)],
        machine=MachineSpec(machine_type=machine),
        labels=labels or {},
    )
    return client.submit(spec, name)


def alive_nodes(client: Client, cluster: str) -> int:
    """Return how many nodes of ``cluster`` are alive now."""
    return sum(1 for node in client.provisioner.refresh(cluster) if node.status.alive)


# -- several jobs -------------------------------------------------------------------


def test_watch_pattern_watches_every_matching_job(home: Path, client: Client) -> None:
    store_job(client, "sm-a", "true")
    store_job(client, "sm-b", "exit 3", machine="test-other")
    store_job(client, "other", "true", machine="test-unwatched")

    done = run_sparkles("watch", "sm-*")

    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("sm-a: 1/1 done, 0 failed") for line in lines)
    assert any(line.startswith("sm-b: 1/1 done, 1 failed") for line in lines)
    assert "Task sm-b.1 failed: exit code 3" in lines
    assert "Job sm-a: 1 of 1 task succeeded." in lines
    assert "Job sm-b: 0 of 1 task succeeded, 1 did not." in lines
    assert lines[-1] == "2 jobs: 1 of 2 tasks succeeded, 1 did not."
    assert "other" not in done.stdout
    assert client.store.count_tasks("other")[TaskStatus.PENDING] == 1


def test_watch_pattern_exits_0_when_every_job_succeeded(
    home: Path, client: Client
) -> None:
    for name in ("ok-1", "ok-2", "ok-3"):
        store_job(client, name, "true")

    done = run_sparkles("watch", "ok-*")

    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.splitlines()[-1] == "3 jobs: 3 of 3 tasks succeeded."
    assert {job.status.value for job in client.store.list_jobs()} == {"complete"}


def test_watch_pattern_gives_up_on_one_job_and_finishes_the_rest(
    home: Path, client: Client
) -> None:
    doomed = store_job(client, "pair-doomed", "true", machine="test-doomed")
    store_job(client, "pair-fine", "true")
    for index in range(5):
        client.store.put_node(
            NodeReq(
                id=f"dead-{index}",
                cluster=doomed.cluster,
                node_class=NodeClass.STANDARD,
                status=NodeStatus.FAILED,
                created=0.0,
                updated=0.0,
            )
        )

    done = run_sparkles("watch", "pair-*")

    assert done.returncode == 1, done.stdout + done.stderr
    assert "5 nodes failed before any task finished" in done.stderr
    assert "The job was killed." in done.stderr
    assert client.job("pair-doomed").status.value == "failed"
    assert client.job("pair-fine").status.value == "complete"


def test_watch_of_a_pattern_matching_nothing_is_one_line(home: Path) -> None:
    done = run_sparkles("watch", "sm-*")

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "sparkles: error: No job matches 'sm-*'; run 'sparkles status' to list "
        "the jobs."
    ]


# -- whose nodes a watch stops ------------------------------------------------------


def test_kill_keepcluster_during_a_watch_keeps_the_nodes(
    home: Path, client: Client
) -> None:
    job = store_job(client, "kept", "sleep 60")
    watch = subprocess.Popen(
        [SPARKLES, *LINGER, "watch", "kept"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        claimed = [TaskStatus.CLAIMED]
        wait_for(lambda: client.tasks("kept", claimed), timeout=60)
        killed = run_sparkles("kill", "kept", "--keepcluster")
        output, _ = watch.communicate(timeout=60)
    finally:
        watch.kill()
        watch.wait()

    assert killed.returncode == 0, killed.stderr
    assert watch.returncode == 1, output
    assert alive_nodes(client, job.cluster) == 1


def test_watch_leaves_the_nodes_of_a_snakemake_run(home: Path, client: Client) -> None:
    run = {"snakemake-run": "r-1"}
    first = store_job(client, "sm-r1-1", "true", labels=run)
    store_job(client, "sm-r1-2", "true", labels=run)

    # Separate processes: nodes outliving an in-process watch would be
    # reported as unreaped children of the test.
    one = run_sparkles(*LINGER, "watch", "sm-r1-1")
    both = run_sparkles(*LINGER, "watch", "sm-r1-*")

    assert one.returncode == 0, one.stdout + one.stderr
    assert both.returncode == 0, both.stdout + both.stderr
    assert alive_nodes(client, first.cluster) >= 1


def test_watch_still_stops_the_idle_cluster_of_a_plain_job(
    home: Path, client: Client, invoke: Invoke
) -> None:
    job = store_job(client, "plain", "true")

    result = invoke(*LINGER, "watch", "plain")

    assert result.exit_code == 0, result.output
    assert client.store.list_nodes(job.cluster) == []
