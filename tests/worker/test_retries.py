"""Storage trouble on a node is tried again; lasting faults fail at once.

A storage step that fails for a passing reason is first tried again in
place, a few times; if it still fails, the task is handed back, within its
attempt budget. The worker runs in this process against a real SQLite
store and a real folder storage whose CAS requests fail a given number of
times, as a network or a bucket having a bad minute would.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import pytest

from sparkles_cas.cas import CAS
from sparkles_cas.errors import StorageError
from sparkles_cas.filestore import FileStorage
from sparkles_core.models import Download, JobSpec, Task, TaskSpec, TaskStatus
from sparkles_core.store.sqlite import SQLiteStore
from sparkles_core.submit import store_job
from sparkles_worker.loop import Worker, WorkerOptions

# Two tries more per step, with short pauses: three tries of a step in all.
RETRY_DELAYS_S = (0.01, 0.02)
TRIES_PER_ATTEMPT = len(RETRY_DELAYS_S) + 1


class FlakyStorage(FileStorage):
    """Folder storage whose CAS reads or writes fail the next N times."""

    failing_reads = 0
    failing_writes = 0

    def open_read(self, key: str) -> BinaryIO:
        if key.startswith("cas/") and self.failing_reads:
            self.failing_reads -= 1
            raise StorageError(f"{key}: connection reset (injected)")
        return super().open_read(key)

    def put_file(self, key: str, path: Path, if_absent: bool = False) -> bool:
        if key.startswith("cas/") and self.failing_writes:
            self.failing_writes -= 1
            raise StorageError(f"{key}: service unavailable (injected)")
        return super().put_file(key, path, if_absent)


@pytest.fixture
def storage(tmp_path: Path) -> FlakyStorage:
    return FlakyStorage(f"file://{tmp_path / 'storage'}")


def run_worker(
    store: SQLiteStore, storage: FlakyStorage, cluster: str, tmp: Path
) -> None:
    """Run one worker in this thread until the queue has been idle briefly."""
    options = WorkerOptions(
        cluster=cluster,
        node_id="w1",
        work_dir=tmp / "node",
        cache_dir=tmp / "cache",
        linger_s=0.3,
        retry_delays_s=RETRY_DELAYS_S,
    )
    Worker(store, storage, options).run()


def job_with_input(store: SQLiteStore, storage: FlakyStorage, tmp: Path) -> str:
    """Store a one-task job that downloads one input; return its cluster."""
    (tmp / "in.txt").write_text("hello\n")
    digest = CAS(storage).upload([tmp / "in.txt"]).digests[tmp / "in.txt"].digest
    spec = TaskSpec(
        command="cat in.txt > out.txt",
        downloads=[Download(dst="in.txt", digest=digest)],
    )
    return store_job(store, "job", JobSpec(name="job", tasks=[spec])).cluster


def the_task(store: SQLiteStore) -> Task:
    task = store.get_task("job.1")
    assert task is not None
    return task


def test_a_passing_download_failure_is_tried_again_in_place(
    store: SQLiteStore, storage: FlakyStorage, tmp_path: Path
) -> None:
    cluster = job_with_input(store, storage, tmp_path)
    storage.failing_reads = TRIES_PER_ATTEMPT - 1

    run_worker(store, storage, cluster, tmp_path)

    task = the_task(store)
    assert (task.status, task.exit_code, task.attempt) == (TaskStatus.COMPLETE, 0, 1)


def test_a_longer_download_failure_hands_the_task_back(
    store: SQLiteStore, storage: FlakyStorage, tmp_path: Path
) -> None:
    cluster = job_with_input(store, storage, tmp_path)
    storage.failing_reads = TRIES_PER_ATTEMPT

    run_worker(store, storage, cluster, tmp_path)

    task = the_task(store)
    assert (task.status, task.exit_code, task.attempt) == (TaskStatus.COMPLETE, 0, 2)
    retried = [h.reason or "" for h in task.history if h.status is TaskStatus.PENDING]
    assert any("staging failed" in reason for reason in retried)


def test_a_passing_upload_failure_is_tried_again(
    store: SQLiteStore, storage: FlakyStorage, tmp_path: Path
) -> None:
    spec = TaskSpec(command="echo made >> out.txt")
    cluster = store_job(store, "job", JobSpec(name="job", tasks=[spec])).cluster
    storage.failing_writes = TRIES_PER_ATTEMPT

    run_worker(store, storage, cluster, tmp_path)

    task = the_task(store)
    assert (task.status, task.exit_code, task.attempt) == (TaskStatus.COMPLETE, 0, 2)


def test_storage_that_keeps_failing_fails_the_task_after_its_budget(
    store: SQLiteStore, storage: FlakyStorage, tmp_path: Path
) -> None:
    cluster = job_with_input(store, storage, tmp_path)
    storage.failing_reads = 100

    run_worker(store, storage, cluster, tmp_path)

    task = the_task(store)
    assert task.status is TaskStatus.FAILED
    assert task.attempt == task.max_attempts
    assert "gave up after 3 attempts" in (task.failure_reason or "")


def test_an_input_missing_from_storage_fails_at_once(
    store: SQLiteStore, storage: FlakyStorage, tmp_path: Path
) -> None:
    spec = TaskSpec(
        command="cat in.txt",
        downloads=[Download(dst="in.txt", digest="0" * 64)],
    )
    cluster = store_job(store, "job", JobSpec(name="job", tasks=[spec])).cluster

    run_worker(store, storage, cluster, tmp_path)

    task = the_task(store)
    assert (task.status, task.attempt) == (TaskStatus.FAILED, 1)
    assert "staging failed" in (task.failure_reason or "")
