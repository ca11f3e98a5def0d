"""How a workflow run uses nodes: kept for the next run, or lost mid-job."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkles_core.models import Task, TaskStatus
from tests.plugin.conftest import OpenStore, RunSnakemake, write_snakefile

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
