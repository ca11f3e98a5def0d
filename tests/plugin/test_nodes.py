"""How a workflow run uses nodes: kept for the next run, or lost mid-job."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from sparkles_core.models import Task, TaskStatus
from tests.conftest import wait_for
from tests.plugin.conftest import (
    RUN_TIMEOUT_S,
    OpenStore,
    RunSnakemake,
    StartSnakemake,
    StoreView,
    blocked_until,
    open_when_created,
    write_snakefile,
)

pytestmark = pytest.mark.slow

MAKE = """
rule make:
    output: "out/{name}.txt"
    shell: "echo {wildcards.name} > {output}"
"""


def claimers(task: Task) -> set[str]:
    """Return the nodes that claimed the task, over all its attempts."""
    return {
        entry.owner
        for entry in task.history
        if entry.status is TaskStatus.CLAIMED and entry.owner is not None
    }


def test_kept_nodes_run_the_next_workflow(
    run_snakemake: RunSnakemake, stored: OpenStore, lingering_nodes: Path
) -> None:
    write_snakefile(Path.cwd(), MAKE)
    keep = ("--sparkles-keep-cluster", "--sparkles-linger", "60")

    run_snakemake(*keep, "--sparkles-nodes", "1", "out/a.txt", "out/b.txt")
    first_nodes = {node.id for node in stored().nodes()}
    run_snakemake(*keep, "--sparkles-nodes", "1", "out/c.txt", "out/d.txt")

    view = stored()
    jobs = view.jobs()
    last_run = jobs[-1].labels["snakemake-run"]
    second = {job.id for job in jobs if job.labels["snakemake-run"] == last_run}
    second_run = [task for task in view.tasks() if task.job_id in second]
    assert len(first_nodes) == 1
    assert {node.id for node in view.nodes()} == first_nodes
    assert len(second_run) == 2
    assert all(claimers(task) == first_nodes for task in second_run)
    assert len({job.cluster for job in view.jobs()}) == 1
    assert Path("out/d.txt").read_text() == "d\n"


def test_preempted_node_is_replaced_without_snakemake_noticing(
    start_snakemake: StartSnakemake,
    stored: OpenStore,
    checked_home: Path,
    tmp_path: Path,
) -> None:
    release = tmp_path / "release"
    write_snakefile(
        Path.cwd(),
        f"""
        rule work:
            output: "done.txt"
            shell: "{blocked_until(release)}; echo done > {{output}}"
        """,
    )
    run = start_snakemake("--sparkles-nodes", "1")

    view = open_when_created(stored, checked_home)
    wait_for(lambda: _claimed(view) is not None, timeout=RUN_TIMEOUT_S)
    first = _claimed(view)
    assert first is not None
    (node,) = [n for n in view.nodes() if n.id == first.owner]
    # A spot VM's preemption notice reaches the worker as SIGTERM.
    os.kill(int(node.detail["pid"]), signal.SIGTERM)
    wait_for(
        lambda: (task := _claimed(view)) is not None and task.owner != first.owner,
        timeout=RUN_TIMEOUT_S,
    )
    release.touch()
    code, stderr = run.finish()

    assert code == 0, stderr
    assert Path("done.txt").read_text() == "done\n"
    (task,) = view.tasks()
    assert task.attempt == 2
    assert len(claimers(task)) == 2
    assert any(entry.reason == "preempted" for entry in task.history)
    assert "Error in rule" not in stderr


def _claimed(view: StoreView) -> Task | None:
    """Return the claimed task, if any."""
    claimed = [t for t in view.tasks() if t.status is TaskStatus.CLAIMED]
    return claimed[0] if claimed else None
