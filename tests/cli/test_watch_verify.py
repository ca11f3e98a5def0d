"""``sparkles watch --verify``: complete tasks whose result.json is gone run again."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from sparkles_core.client import Client
from sparkles_core.models import Job, TaskSpec
from tests.cli.conftest import run_sparkles

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("plain_output")]

REASON = "its result.json is missing (sparkles watch --verify)"


def test_verify_reruns_complete_tasks_without_a_result(
    client: Client, finished: Callable[..., Job]
) -> None:
    finished("kept", [TaskSpec(command="echo {i}", parameters={"i": "1"})] * 2)
    lost = client.tasks("kept")[0]
    assert lost.result_key is not None
    client.storage.delete([lost.result_key])

    done = run_sparkles("watch", "--verify", "kept")

    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert (
        lines[0] == "Job kept: 1 complete task without a result.json, back to pending."
    )
    first, second = client.tasks("kept")
    assert [entry.reason for entry in first.history].count(REASON) == 1
    assert REASON not in [entry.reason for entry in second.history]
    assert first.result_key and client.storage.exists(first.result_key)
    assert client.job("kept").status.value == "complete"


def test_verify_with_every_result_stored_reruns_nothing(
    client: Client, finished: Callable[..., Job]
) -> None:
    finished("whole", [TaskSpec(command="true")])

    done = run_sparkles("watch", "--verify", "whole")

    assert done.returncode == 0, done.stdout + done.stderr
    assert "every complete task has its result.json" in done.stdout
    assert REASON not in [entry.reason for entry in client.tasks("whole")[0].history]
