"""Store and storage errors while a workflow runs: ridden out, or one job's."""

from __future__ import annotations

from pathlib import Path

import pytest
from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.executors.base import SubmittedJobInfo

from snakemake_executor_plugin_sparkles.executor import Executor
from snakemake_executor_plugin_sparkles.polling import StatusPolls
from sparkles_cas.hashing import sha256_bytes
from sparkles_core.client import Client
from sparkles_core.config import load_config
from tests.plugin.conftest import (
    FaultControl,
    OpenStore,
    RunSnakemake,
    write_snakefile,
)


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_short_outages_are_waited_out_and_a_long_one_fails_the_jobs() -> None:
    clock = Clock()
    polls = StatusPolls(limit_s=600, clock=clock)
    error = RuntimeError("store unreachable")

    verdicts = []
    for offset in (0, 300, 599):
        clock.now = 1000 + offset
        verdicts.append(polls.failed(error))
    clock.now = 1600
    verdicts.append(polls.failed(error))

    assert verdicts == [False, False, False, True]


def test_a_poll_that_works_ends_the_outage() -> None:
    clock = Clock()
    polls = StatusPolls(limit_s=600, clock=clock)
    error = RuntimeError("store unreachable")

    polls.failed(error)
    clock.now += 500
    polls.succeeded()
    clock.now += 500
    first_after = polls.failed(error)
    clock.now += 599

    assert (first_after, polls.failed(error)) == (False, False)


class RecordingRun:
    """Stands in for the workflow run: records the tasks given up on."""

    def __init__(self) -> None:
        self.abandoned: list[str] = []

    def abandon(self, task_id: str) -> None:
        self.abandoned.append(task_id)


def test_an_outage_past_the_limit_fails_every_active_job() -> None:
    executor = Executor.__new__(Executor)
    run = RecordingRun()
    reported: list[tuple[str, str]] = []
    executor._run = run  # type: ignore[assignment]
    executor._polls = StatusPolls(limit_s=0)
    executor.report_job_error = lambda info, msg: reported.append(
        (info.external_jobid, msg)
    )
    active = [SubmittedJobInfo(None, external_jobid=f"sm-x-{n}-r.1") for n in (1, 2)]

    still_active = executor._status_unread(active, WorkflowError("store down"))

    assert still_active == []
    assert run.abandoned == ["sm-x-1-r.1", "sm-x-2-r.1"]
    assert [task for task, _ in reported] == run.abandoned
    assert all("for 0 min: store down" in msg for _, msg in reported)


@pytest.mark.slow
def test_status_reads_that_fail_for_a_while_do_not_stop_the_workflow(
    run_snakemake: RunSnakemake, faulty_store: FaultControl
) -> None:
    faulty_store.fail_task_reads()
    flag = faulty_store.folder / "fail-get-tasks"
    reads = faulty_store.folder / "get_tasks.log"
    # The task lets the reads work again once three of them have failed.
    write_snakefile(
        Path.cwd(),
        f"""
        rule all:
            input: "done.txt"

        rule work:
            output: "done.txt"
            shell:
                "until [ $(cat '{reads}' 2>/dev/null | wc -l) -ge 3 ]; "
                "do sleep 0.1; done; rm '{flag}' && echo done > {{output}}"
        """,
    )

    result = run_snakemake(env=faulty_store.env)

    assert Path("done.txt").read_text() == "done\n"
    assert "could not read the tasks" in result.stderr
    assert "injected failure" in result.stderr
    assert len(faulty_store.task_reads()) > 2


@pytest.mark.slow
def test_outputs_that_cannot_be_fetched_fail_only_their_job(
    run_snakemake: RunSnakemake, stored: OpenStore
) -> None:
    poison = b"poison\n"
    client = Client(load_config())
    try:
        # Storage that already holds the digest is not written again, so the
        # worker's upload keeps these wrong bytes and the fetch must refuse.
        client.cas.storage.put_bytes(client.cas.key_for(sha256_bytes(poison)), b"bad")
    finally:
        client.close()
    write_snakefile(
        Path.cwd(),
        """
        rule all:
            input: "poison.txt", "good.txt"

        rule poison:
            output: "poison.txt"
            shell: "echo poison > {output}"

        rule good:
            output: "good.txt"
            shell: "sleep 3 && echo good > {output}"
        """,
    )

    result = run_snakemake("--keep-going", check=False)

    assert result.returncode != 0
    (poisoned,) = [t for t in stored().tasks() if t.job_id.endswith("-poison")]
    assert f"could not fetch the outputs of task {poisoned.id}" in result.stderr
    assert Path("good.txt").read_text() == "good\n"
    assert not Path("poison.txt").exists()
