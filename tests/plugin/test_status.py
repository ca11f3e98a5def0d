"""Following a running workflow: from Snakemake's polls and from the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import wait_for
from tests.plugin.conftest import (
    RUN_TIMEOUT_S,
    FaultControl,
    OpenStore,
    RunSnakemake,
    StartSnakemake,
    blocked_until,
    open_when_created,
    write_snakefile,
)
from tests.plugin.test_examples import copy_example

pytestmark = pytest.mark.slow

SPARKLES = str(Path(sys.executable).parent / "sparkles")
JOBS = 6


def write_blocked_fanout(release: Path) -> None:
    """Write a workflow of JOBS jobs that wait until ``release`` exists."""
    write_snakefile(
        Path.cwd(),
        f"""
        rule all:
            input: expand("held/{{n}}.txt", n=range({JOBS}))

        rule hold:
            output: "held/{{n}}.txt"
            shell: "{blocked_until(release)}; touch {{output}}"
        """,
    )


def test_each_poll_reads_every_active_job_in_one_query(
    start_snakemake: StartSnakemake,
    stored: OpenStore,
    faulty_store: FaultControl,
    checked_home: Path,
    tmp_path: Path,
) -> None:
    release = tmp_path / "release"
    write_blocked_fanout(release)
    run = start_snakemake(
        f"--jobs={JOBS}",
        "--sparkles-nodes=2",
        "--sparkles-status-interval=0.3",
        env=faulty_store.env,
    )

    view = open_when_created(stored, checked_home)
    wait_for(lambda: len(view.jobs()) == JOBS, timeout=RUN_TIMEOUT_S)
    # The poll under way may have started before the last job was reported.
    settled = len(faulty_store.task_reads()) + 1
    wait_for(lambda: len(faulty_store.task_reads()) >= settled + 5)
    reads = faulty_store.task_reads()[settled:]
    release.touch()
    code, stderr = run.finish()

    assert code == 0, stderr
    assert len(reads) >= 5
    assert set(reads) == {JOBS}


def test_sparkles_status_lists_the_running_workflow(
    start_snakemake: StartSnakemake,
    stored: OpenStore,
    checked_home: Path,
    tmp_path: Path,
) -> None:
    release = tmp_path / "release"
    write_blocked_fanout(release)
    run = start_snakemake(f"--jobs={JOBS}", "--sparkles-nodes=2")

    view = open_when_created(stored, checked_home)
    wait_for(lambda: len(view.jobs()) == JOBS, timeout=RUN_TIMEOUT_S)
    status = subprocess.run(
        [SPARKLES, "status"],
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        env={**os.environ, "COLUMNS": "200"},
    )
    release.touch()
    code, stderr = run.finish()

    assert status.returncode == 0, status.stderr
    assert code == 0, stderr
    listed = [line for line in status.stdout.splitlines() if "-hold" in line]
    assert sorted(job.id for job in view.jobs()) == sorted(
        line.split()[0] for line in listed
    )


def test_plugins_hear_each_job_of_the_run_end(
    run_snakemake: RunSnakemake, faulty_store: FaultControl
) -> None:
    copy_example("hello")

    run_snakemake(env=faulty_store.env)

    events = faulty_store.events()
    tasks = sorted(line for line in events if line.startswith("task "))
    jobs = sorted(line for line in events if line.startswith("job "))
    assert len(tasks) == 3 and all(line.endswith(" complete 0") for line in tasks)
    assert len(jobs) == 3 and all(
        line.endswith(" complete complete=1") for line in jobs
    )
