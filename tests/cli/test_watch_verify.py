"""``sparkles watch --verify``: complete tasks whose result.json is gone run again."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from sparkles_cas.filestore import FileStorage
from sparkles_cas.storage import ObjectInfo
from sparkles_core import layout
from sparkles_core.client import Client
from sparkles_core.models import Job, ResourceUsage, Task, TaskSpec
from sparkles_core.store.base import Completion
from sparkles_core.store.sqlite import SQLiteStore
from tests.cli.conftest import Invoke, run_sparkles

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


def test_verify_keeps_a_task_that_completes_while_it_looks(
    client: Client,
    finished: Callable[..., Job],
    invoke: Invoke,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    job = finished("racing", [TaskSpec(command="true")] * 2, ran=1)
    running = client.store.claim(job.cluster, "node-x", 600.0)
    assert running is not None
    real_list_tasks, real_list = SQLiteStore.list_tasks, FileStorage.list
    pending = [running]

    def worker_finishes() -> None:
        """Do what a worker does at the end: store result.json, then complete."""
        while pending:
            task = pending.pop()
            key = layout.result_key(task.id, task.attempt)
            client.storage.put_bytes(key, b"{}")
            now = time.time()
            done = Completion(0, None, now, now, ResourceUsage(), result_key=key)
            assert client.store.complete(task.id, "node-x", done)

    def list_tasks(store: SQLiteStore, *args: Any, **kwargs: Any) -> list[Task]:
        found = real_list_tasks(store, *args, **kwargs)
        worker_finishes()
        return found

    def list_objects(storage: FileStorage, prefix: str = "") -> Iterator[ObjectInfo]:
        found = list(real_list(storage, prefix))
        worker_finishes()
        return iter(found)

    # The task completes right after whichever read comes first.
    monkeypatch.setattr(SQLiteStore, "list_tasks", list_tasks)
    monkeypatch.setattr(FileStorage, "list", list_objects)

    result = invoke("watch", "--verify", "racing")

    assert result.exit_code == 0, result.output
    assert "every complete task has its result.json" in result.output
    task = client.store.get_task(running.id)
    assert task is not None and REASON not in [e.reason for e in task.history]
