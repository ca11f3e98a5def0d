"""A worker keeps its lease for the whole attempt, not only while the command runs.

The worker runs in this process against a real SQLite store and a real
folder storage that is slowed down, as a multi-GB transfer would be, while
a rival keeps trying to claim the task.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import BinaryIO

import pytest

from sparkles_cas.cas import CAS
from sparkles_cas.filestore import FileStorage
from sparkles_core.models import Download, JobSpec, Task, TaskSpec, TaskStatus
from sparkles_core.store.sqlite import SQLiteStore
from sparkles_core.submit import store_job
from sparkles_worker.loop import Worker, WorkerOptions
from tests.conftest import wait_for

# The heartbeat renews every third of a lease, so a renewal may come as
# late as two thirds of a lease (2 s) without the lease running out: room
# for a loaded machine's scheduling delays.
LEASE_S = 3.0
# Two leases long: without renewal the rival would take the task over, and
# with it the lease has to be renewed several times.
TRANSFER_S = 2 * LEASE_S


class SlowStorage(FileStorage):
    """Folder storage whose CAS transfers take ``TRANSFER_S`` when enabled."""

    slow_downloads = False
    slow_uploads = False

    def open_read(self, key: str) -> BinaryIO:
        if self.slow_downloads:
            time.sleep(TRANSFER_S)
        return super().open_read(key)

    def put_file(self, key: str, path: Path, if_absent: bool = False) -> bool:
        # Only CAS objects are written "if absent"; live logs are not slowed.
        if self.slow_uploads and if_absent:
            time.sleep(TRANSFER_S)
        return super().put_file(key, path, if_absent)


@pytest.fixture
def storage(tmp_path: Path) -> SlowStorage:
    return SlowStorage(f"file://{tmp_path / 'storage'}")


def options_for(cluster: str, tmp_path: Path) -> WorkerOptions:
    """Return the options of worker w1, which runs one task and exits."""
    return WorkerOptions(
        cluster=cluster,
        node_id="w1",
        work_dir=tmp_path / "node",
        cache_dir=tmp_path / "cache",
        lease_s=LEASE_S,
        linger_s=0.0,
        max_tasks=1,
    )


def run_with_rival(
    store: SQLiteStore, storage: SlowStorage, cluster: str, tmp_path: Path
) -> list[Task]:
    """Run one task on worker w1 while a rival polls; return what the rival got."""
    worker = Worker(store, storage, options_for(cluster, tmp_path))
    thread = threading.Thread(target=worker.run)
    thread.start()
    wait_for(lambda: owner_of(store, "job.1") == "w1")
    taken: list[Task] = []
    while thread.is_alive():
        task = store.claim(cluster, "rival", 60.0)
        if task is not None:
            taken.append(task)
        time.sleep(0.1)
    thread.join()
    return taken


def owner_of(store: SQLiteStore, task_id: str) -> str | None:
    task = store.get_task(task_id)
    return None if task is None else task.owner


def assert_one_attempt_by_w1(store: SQLiteStore, taken: list[Task]) -> Task:
    assert taken == [], "the rival took the task over"
    task = store.get_task("job.1")
    assert task is not None
    assert (task.status, task.exit_code, task.owner) == (TaskStatus.COMPLETE, 0, "w1")
    assert task.attempt == 1
    assert not any("lease expired" in (h.reason or "") for h in task.history)
    return task


@pytest.mark.slow
def test_lease_is_kept_while_inputs_download_slowly(
    store: SQLiteStore, storage: SlowStorage, tmp_path: Path
) -> None:
    (tmp_path / "big.dat").write_bytes(b"x" * 1024)
    digest = CAS(storage).upload([tmp_path / "big.dat"]).digests[tmp_path / "big.dat"]
    spec = TaskSpec(
        command="wc -c < big.dat > size.txt",
        downloads=[Download(dst="big.dat", digest=digest.digest)],
    )
    job = store_job(store, "job", JobSpec(name="job", tasks=[spec]))
    storage.slow_downloads = True

    taken = run_with_rival(store, storage, job.cluster, tmp_path)

    assert_one_attempt_by_w1(store, taken)


@pytest.mark.slow
def test_lease_is_kept_while_outputs_upload_slowly(
    store: SQLiteStore, storage: SlowStorage, tmp_path: Path
) -> None:
    spec = TaskSpec(command="head -c 1048576 /dev/zero > big.out")
    job = store_job(store, "job", JobSpec(name="job", tasks=[spec]))
    storage.slow_uploads = True

    taken = run_with_rival(store, storage, job.cluster, tmp_path)

    task = assert_one_attempt_by_w1(store, taken)
    assert task.result_key is not None and storage.exists(task.result_key)


@pytest.mark.slow
def test_task_killed_while_staging_never_runs(
    store: SQLiteStore, storage: SlowStorage, tmp_path: Path
) -> None:
    (tmp_path / "big.dat").write_bytes(b"x" * 1024)
    digest = CAS(storage).upload([tmp_path / "big.dat"]).digests[tmp_path / "big.dat"]
    marker = tmp_path / "ran"
    spec = TaskSpec(
        command=f"touch {marker}",
        downloads=[Download(dst="big.dat", digest=digest.digest)],
    )
    job = store_job(store, "job", JobSpec(name="job", tasks=[spec]))
    storage.slow_downloads = True
    worker = Worker(store, storage, options_for(job.cluster, tmp_path))
    thread = threading.Thread(target=worker.run)
    thread.start()
    wait_for(lambda: owner_of(store, "job.1") == "w1")

    store.kill_job(job.id)
    thread.join()

    assert not marker.exists(), "the command ran after its job was killed"
    task = store.get_task("job.1")
    assert task is not None and task.status is TaskStatus.KILLED
