"""How a finished job that did not succeed is described to the user."""

from __future__ import annotations

from typing import Any

import pytest

from snakemake_executor_plugin_sparkles.results import describe_failure
from sparkles_core.models import Task, TaskSpec, TaskStatus

ID = "sm-20260101-120000-ab12-1-align.1"


def task(timeout: float | None = None, **fields: Any) -> Task:
    """Return a finished task record of one Snakemake job."""
    spec = TaskSpec(command="snakemake ...", timeout=timeout)
    return Task(
        id=ID, job_id=ID[:-2], index=1, cluster="c-1", spec=spec, attempt=1, **fields
    )


@pytest.mark.parametrize(
    ("record", "expected"),
    [
        (
            task(300, status=TaskStatus.COMPLETE, signal=15, timed_out=True),
            f"Sparkles task {ID} timed out after 5 min (resources: runtime).",
        ),
        (
            task(90, status=TaskStatus.COMPLETE, signal=9, timed_out=True),
            f"Sparkles task {ID} timed out after 1.5 min (resources: runtime).",
        ),
        (
            task(300, status=TaskStatus.COMPLETE, signal=15),
            f"Sparkles task {ID} was killed by signal 15.",
        ),
        (
            task(status=TaskStatus.COMPLETE, exit_code=1),
            f"Sparkles task {ID} exited with status 1.",
        ),
        (
            task(status=TaskStatus.FAILED, failure_reason="staging failed: gone"),
            f"Sparkles could not run task {ID}: staging failed: gone.",
        ),
        (task(status=TaskStatus.KILLED), f"Sparkles task {ID} was killed."),
    ],
    ids=[
        "timed-out",
        "timed-out-fraction",
        "signal",
        "exit",
        "not-run",
        "killed",
    ],
)
def test_failure_says_how_the_task_ended(record: Task, expected: str) -> None:
    assert describe_failure(record) == expected
