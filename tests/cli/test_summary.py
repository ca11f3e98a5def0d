"""``sparkles summarize --exitcode`` and ``--incomplete``."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sparkles_core.client import Client
from sparkles_core.models import Job, TaskSpec
from tests.cli.conftest import Invoke, Sample, run_sparkles

pytestmark = pytest.mark.usefixtures("plain_output")


def test_summarize_exitcode_keeps_only_that_exit(
    sample: Sample, invoke: Invoke
) -> None:
    result = invoke("summarize", "sample", "--exitcode", "3")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Job sample: 1 task ran"
    slowest = lines[lines.index("Slowest 1 task") + 2 :]
    assert [line.split()[0] for line in slowest] == ["sample.2"]


@pytest.mark.parametrize(
    ("code", "found"),
    [("137", ["sample.4"]), ("9", []), ("130", [])],
    ids=["sigkill-as-137", "bare-signal-number", "other-signal"],
)
def test_summarize_exitcode_over_128_finds_tasks_killed_by_that_signal(
    sample: Sample, invoke: Invoke, code: str, found: list[str]
) -> None:
    result = invoke("summarize", "sample", "--exitcode", code)

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    if not found:
        assert lines == [f"No task of job sample exited with {code}."]
        return
    slowest = lines[lines.index(f"Slowest {len(found)} task") + 2 :]
    assert [line.split()[0] for line in slowest] == found


def test_summarize_help_says_how_signals_match(invoke: Invoke) -> None:
    text = " ".join(invoke("summarize", "--help").output.split())
    assert "A CODE over 128 also matches a command killed by signal CODE-128" in text


def test_summarize_exitcode_no_task_had_says_so(sample: Sample) -> None:
    done = run_sparkles("summarize", "sample", "-e", "5")

    assert done.returncode == 0, done.stderr
    assert done.stdout == "No task of job sample exited with 5.\n"


def test_summarize_incomplete_shows_the_running_tasks(
    client: Client, finished: Callable[..., Job], invoke: Invoke
) -> None:
    job = finished("slow", [TaskSpec(command="true", parameters={"x": "1"})], ran=0)
    assert client.store.claim(job.cluster, "node-a", 600.0)

    result = invoke("summarize", "slow", "-i")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Job slow: 1 task running"
    assert any(line.split()[:3] == ["running", "for", "1"] for line in lines)
    [row] = lines[lines.index("Longest running 1 task") + 2 :]
    assert row.split()[0] == "slow.1"
    assert row.split()[-2:] == ["node-a", "x=1"]


def test_summarize_incomplete_with_nothing_running_says_so(
    sample: Sample, invoke: Invoke
) -> None:
    result = invoke("summarize", "sample", "-i")
    assert result.output == "Job sample: no task is running.\n"


def test_summarize_incomplete_and_exitcode_is_a_usage_error(
    sample: Sample, invoke: Invoke
) -> None:
    result = invoke("summarize", "sample", "-i", "-e", "1")
    assert result.exit_code == 2
    assert "not both" in result.output
