"""Failed jobs and interrupted workflows: logs shown, nothing left running."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from sparkles_core.models import TaskStatus
from tests.conftest import wait_for
from tests.plugin.conftest import (
    RUN_TIMEOUT_S,
    FaultControl,
    OpenStore,
    RunSnakemake,
    StartSnakemake,
    snakemake_argv,
    worker_processes,
    write_snakefile,
)

pytestmark = pytest.mark.slow


def test_failing_rule_shows_its_log_and_stops_the_workers(
    run_snakemake: RunSnakemake, stored: OpenStore, checked_home: Path
) -> None:
    write_snakefile(
        Path.cwd(),
        """
        rule all:
            input: "never.txt"

        rule fail:
            output: "never.txt"
            log: "logs/fail.log"
            shell: "(echo 'the-rule-says-why' >&2; exit 3) 2> {log}"
        """,
    )

    result = run_snakemake("--show-failed-logs", check=False)

    assert result.returncode != 0
    assert "the-rule-says-why" in result.stderr
    assert "exited with status 1" in result.stderr
    assert Path("logs/fail.log").read_text() == "the-rule-says-why\n"
    assert not Path("never.txt").exists()
    (task,) = stored().tasks()
    assert task.status is TaskStatus.COMPLETE
    assert task.id in result.stderr
    assert not worker_processes(checked_home)


def test_task_output_is_kept_when_the_rule_has_no_log(
    run_snakemake: RunSnakemake,
) -> None:
    write_snakefile(
        Path.cwd(),
        """
        rule fail:
            output: "never.txt"
            shell: "echo 'said-on-stdout'; exit 7"
        """,
    )

    result = run_snakemake("--show-failed-logs", check=False)

    assert result.returncode != 0
    (saved,) = Path(".snakemake/sparkles/logs").iterdir()
    assert "said-on-stdout" in saved.read_text()
    assert "said-on-stdout" in result.stderr


def test_runtime_overrun_is_reported_as_a_timeout(
    run_snakemake: RunSnakemake, stored: OpenStore
) -> None:
    # Snakemake counts runtime in whole minutes, so one minute is the least.
    write_snakefile(
        Path.cwd(),
        """
        rule slow:
            output: "never.txt"
            resources: runtime=1
            shell: "sleep 600 && touch {output}"
        """,
    )

    result = run_snakemake(check=False)

    assert result.returncode != 0
    (task,) = stored().tasks()
    assert f"Sparkles task {task.id} timed out after 1 min (resources: runtime)." in (
        result.stderr
    )
    assert "killed by signal" not in result.stderr


def test_sigint_kills_tasks_and_stops_workers(
    checked_home: Path, stored: OpenStore
) -> None:
    write_snakefile(
        Path.cwd(),
        """
        rule all:
            input: expand("slept/{n}.txt", n=range(6))

        rule nap:
            output: "slept/{n}.txt"
            shell: "sleep 120 && touch {output}"
        """,
    )
    process = subprocess.Popen(
        snakemake_argv(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=dict(os.environ),
    )
    try:
        wait_for(lambda: _claimed_tasks(stored) >= 2, timeout=RUN_TIMEOUT_S)
        process.send_signal(signal.SIGINT)
        process.wait(timeout=RUN_TIMEOUT_S)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert process.returncode != 0
    statuses = {task.status for task in stored().tasks()}
    assert statuses == {TaskStatus.KILLED}
    assert not worker_processes(checked_home)
    assert not list(Path("slept").glob("*.txt"))


def test_second_sigint_lets_the_clean_up_and_the_last_status_read_finish(
    checked_home: Path,
    stored: OpenStore,
    faulty_store: FaultControl,
    start_snakemake: StartSnakemake,
) -> None:
    write_snakefile(
        Path.cwd(),
        """
        rule all:
            input: expand("slept/{n}.txt", n=range(4))

        rule nap:
            output: "slept/{n}.txt"
            shell: "sleep 120 && touch {output}"
        """,
    )
    run = start_snakemake("--sparkles-nodes", "2", env=faulty_store.env)
    wait_for(lambda: _claimed_tasks(stored) >= 2, timeout=RUN_TIMEOUT_S)
    view = stored()
    # A status read in progress keeps Snakemake's shutdown joining the
    # poller, so the second Ctrl-C lands in the middle of the shutdown.
    faulty_store.hold_poller_reads()
    wait_for(faulty_store.poller_read_held)

    run.process.send_signal(signal.SIGINT)
    wait_for(lambda: "Terminating processes on user request" in run.log.read_text())
    run.process.send_signal(signal.SIGINT)
    # The clean-up deletes the node records last; a store closed without
    # waiting for the poller would wake the held read, and fail it, now.
    wait_for(lambda: not view.nodes(), timeout=RUN_TIMEOUT_S)
    faulty_store.hold_poller_reads(False)
    code, _ = run.finish()

    assert code != 0
    assert faulty_store.held_reads() == ["read"], "the store closed under a read"
    assert [task.id for task in view.tasks() if not task.status.finished] == []
    assert not worker_processes(checked_home)


def _claimed_tasks(stored: OpenStore) -> int:
    """Return how many tasks are claimed, once the store exists."""
    if not (Path(os.environ["SPARKLES_HOME"]) / "store.db").exists():
        return 0
    time.sleep(0.2)
    tasks = stored().tasks()
    return sum(1 for task in tasks if task.status is TaskStatus.CLAIMED)
