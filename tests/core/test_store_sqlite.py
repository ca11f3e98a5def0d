"""Behaviour only the SQLite store has: its file, its schema, its query plans."""

from __future__ import annotations

import multiprocessing
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sparkles_core.errors import BackendError, StoreError
from sparkles_core.models import TaskStatus
from sparkles_core.store.base import Store
from sparkles_core.store.sqlite import SCHEMA_VERSION, SQLiteStore
from tests.core.store_helpers import (
    CLUSTER,
    LEASE_S,
    SUCCESS,
    must_claim,
    must_get,
    submit,
    submit_one,
)


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """Yield an empty SQLite store and close it afterwards."""
    opened = SQLiteStore(tmp_path / "store.db")
    yield opened
    opened.close()


def test_claim_takes_lowest_index_first(sqlite_store: SQLiteStore) -> None:
    submit(sqlite_store, "job", 3)
    submit(sqlite_store, "elsewhere", 2, cluster="cluster-b")

    claimed = [must_claim(sqlite_store, f"w{n}").id for n in range(3)]

    assert claimed == ["job.1", "job.2", "job.3"]


@pytest.fixture(scope="module")
def big_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SQLiteStore]:
    """Yield a SQLite store holding one job of 100,000 tasks."""
    opened = SQLiteStore(tmp_path_factory.mktemp("big") / "store.db")
    submit(opened, "big", 100_000)
    submit(opened, "small", 10)
    yield opened
    opened.close()


HotCall = Callable[[Store], object]

HOT_CALLS: dict[str, HotCall] = {
    "claim": lambda s: s.claim(CLUSTER, "w1", LEASE_S),
    "claim-nothing-pending": lambda s: s.claim("idle", "w1", LEASE_S),
    "renew": lambda s: s.renew(must_claim(s, "w1").id, "w1", LEASE_S),
    "complete": lambda s: s.complete(must_claim(s, "w1").id, "w1", SUCCESS),
    "release": lambda s: s.release(must_claim(s, "w1").id, "w1", "preempted"),
    "get_task": lambda s: s.get_task("big.77777"),
    "get_tasks": lambda s: s.get_tasks(f"big.{n}" for n in range(1, 2000, 3)),
    "list_tasks": lambda s: s.list_tasks("small"),
    "list_tasks-by-status": lambda s: s.list_tasks("big", [TaskStatus.CLAIMED]),
    "count_tasks": lambda s: s.count_tasks("big"),
    "claimed_tasks": lambda s: s.claimed_tasks(CLUSTER),
    "unfinished_count": lambda s: s.unfinished_count(CLUSTER),
    "count_tasks_by_job": lambda s: s.count_tasks_by_job(["big", "small"]),
    "finished_since": lambda s: s.finished_since(["big", "small"], 0.0),
    "jobs_with_work": lambda s: s.jobs_with_work(CLUSTER),
    "expire_leases": lambda s: s.expire_leases(CLUSTER),
    "expire_leases-among": lambda s: s.expire_leases(CLUSTER, task_ids=["big.9"]),
    "reset_owned_by": lambda s: s.reset_owned_by(["w1", "w2"], "node gone"),
    "reset_owned_by-among": lambda s: s.reset_owned_by(
        ["w1"], "node gone", task_ids=["big.9"]
    ),
    "reset": lambda s: s.reset(["big.5", "big.6"]),
    "kill_job": lambda s: s.kill_job("small"),
}


@pytest.mark.slow
@pytest.mark.parametrize("call", HOT_CALLS.values(), ids=HOT_CALLS.keys())
def test_task_queries_use_an_index_at_100k_tasks(
    big_store: SQLiteStore, call: HotCall
) -> None:
    statements: list[str] = []
    connection = big_store._file.connection()  # the one this thread uses
    connection.set_trace_callback(statements.append)
    try:
        call(big_store)
    finally:
        connection.set_trace_callback(None)

    on_tasks = [
        sql
        for sql in statements
        if sql.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE"))
        and " tasks" in sql
    ]
    assert on_tasks, f"no task query was traced among {statements}"
    with sqlite3.connect(big_store.path) as reader:
        for sql in on_tasks:
            plan = [row[3] for row in reader.execute(f"EXPLAIN QUERY PLAN {sql}")]
            scans = [
                step for step in plan if step.startswith(("SCAN tasks", "SCAN jobs"))
            ]
            assert not scans, f"{sql!r} scans the table: {plan}"
    reader.close()


def test_finished_since_goes_by_status_not_a_stale_end_time(
    sqlite_store: SQLiteStore,
) -> None:
    submit(sqlite_store, "job", 2)
    for _ in range(2):
        sqlite_store.complete(must_claim(sqlite_store, "w1").id, "w1", SUCCESS)
    # Back to pending with its end time left behind, as a writer that knows
    # nothing of the ``ended`` column (or a hand edit) leaves a row.
    with sqlite3.connect(sqlite_store.path) as writer:
        writer.execute(
            "UPDATE tasks SET status = 'pending',"
            " record = json_set(record, '$.status', 'pending') WHERE id = 'job.1'"
        )
    writer.close()

    found = sqlite_store.finished_since(["job"], 0.0)

    assert [task.id for task in found] == ["job.2"]


def _claimed(store: SQLiteStore, owner: str = "w1") -> None:
    submit(store, "job", 1)
    must_claim(store, owner)  # at T0, so its lease ran out long ago


def _completed(store: SQLiteStore) -> None:
    _claimed(store)
    store.complete("job.1", "w1", SUCCESS)


def _last_change(store: SQLiteStore) -> float:
    return must_get(store, "job.1").history[-1].time


# Each change that reads the clock itself: how to prepare for it, the change,
# and which time it recorded.
TIMED_CHANGES: dict[str, tuple[Callable[[SQLiteStore], object], ...]] = {
    "claim": (
        lambda s: submit(s, "job", 1),
        lambda s: s.claim(CLUSTER, "w1", LEASE_S),
        _last_change,
    ),
    "renew": (
        _claimed,
        lambda s: s.renew("job.1", "w1", LEASE_S),
        lambda s: (must_get(s, "job.1").lease_expires or 0.0) - LEASE_S,
    ),
    "release": (
        _claimed,
        lambda s: s.release("job.1", "w1", "preempted"),
        _last_change,
    ),
    "expire_leases": (
        _claimed,
        lambda s: s.expire_leases(CLUSTER),
        _last_change,
    ),
    "reset_owned_by": (
        lambda s: _claimed(s, "gone"),
        lambda s: s.reset_owned_by(["gone"], "node gone"),
        _last_change,
    ),
    "reset": (
        _completed,
        lambda s: s.reset(["job.1"]),
        _last_change,
    ),
    "kill_job": (
        lambda s: submit(s, "job", 1),
        lambda s: s.kill_job("job"),
        _last_change,
    ),
}


@pytest.mark.parametrize(
    ("prepare", "change", "recorded"),
    TIMED_CHANGES.values(),
    ids=TIMED_CHANGES.keys(),
)
def test_a_change_that_waited_for_the_lock_records_when_it_got_it(
    sqlite_store: SQLiteStore,
    prepare: Callable[[SQLiteStore], object],
    change: Callable[[SQLiteStore], object],
    recorded: Callable[[SQLiteStore], float],
) -> None:
    prepare(sqlite_store)
    holder = sqlite3.connect(sqlite_store.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process is writing
    with ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(change, sqlite_store)
        time.sleep(0.5)  # long enough for the change to queue for the lock
        assert not waiting.done()
        released = time.time()
        holder.execute("COMMIT")
        waiting.result()
    holder.close()

    assert recorded(sqlite_store) >= released


def test_store_file_uses_wal_and_records_schema_version(
    sqlite_store: SQLiteStore,
) -> None:
    with sqlite3.connect(sqlite_store.path) as reader:
        mode = reader.execute("PRAGMA journal_mode").fetchone()[0]
        version = reader.execute("PRAGMA user_version").fetchone()[0]
    reader.close()

    assert (mode, version) == ("wal", SCHEMA_VERSION)


@pytest.mark.slow
def test_new_store_file_opened_by_many_processes_at_once(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/fresh/store.db"
    context = multiprocessing.get_context("spawn")

    with context.Pool(6) as pool:
        pool.starmap(submit_one, [(url, f"job-{n}") for n in range(6)])

    fresh = SQLiteStore.from_url(url)
    try:
        assert [j.id for j in fresh.list_jobs()] == [f"job-{n}" for n in range(6)]
    finally:
        fresh.close()


def test_reopened_store_keeps_its_records(tmp_path: Path) -> None:
    first = SQLiteStore(tmp_path / "store.db")
    submit(first, "job", 2)
    first.close()

    second = SQLiteStore(tmp_path / "store.db")
    try:
        assert [t.id for t in second.list_tasks("job")] == ["job.1", "job.2"]
    finally:
        second.close()


def test_store_of_the_previous_schema_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    old = SQLiteStore(path)
    submit(old, "job", 2)
    old.complete(must_claim(old, "w1").id, "w1", SUCCESS)
    old.close()
    # What schema 1 lacked: when each finished task finished.
    with sqlite3.connect(path) as writer:
        writer.execute("DROP INDEX tasks_job_ended")
        writer.execute("ALTER TABLE tasks DROP COLUMN ended")
        writer.execute("PRAGMA user_version = 1")
    writer.close()

    upgraded = SQLiteStore(path)
    try:
        assert [t.id for t in upgraded.finished_since(["job"], 0.0)] == ["job.1"]
        assert [t.id for t in upgraded.list_tasks("job")] == ["job.1", "job.2"]
    finally:
        upgraded.close()
    with sqlite3.connect(path) as reader:
        assert reader.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    reader.close()


def test_store_written_by_newer_version_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    SQLiteStore(path).close()
    with sqlite3.connect(path) as writer:
        writer.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    writer.close()

    with pytest.raises(StoreError, match="newer than this Sparkles"):
        SQLiteStore(path)


def test_from_url_creates_folders_and_keeps_the_url(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path}/a/b/store.db"

    opened = SQLiteStore.from_url(url)
    opened.close()

    assert opened.url == url
    assert (tmp_path / "a" / "b" / "store.db").is_file()


@pytest.mark.parametrize(
    "url",
    ["sqlite://relative/store.db", "sqlite:relative.db", "file:///tmp/store.db"],
    ids=["relative-path", "no-slashes", "other-scheme"],
)
def test_from_url_refuses_malformed_urls(url: str) -> None:
    with pytest.raises(BackendError, match="absolute path"):
        SQLiteStore.from_url(url)


def _under_a_file(tmp_path: Path) -> Path:
    (tmp_path / "file.txt").write_text("not a folder\n")
    return tmp_path / "file.txt" / "store.db"


def _a_folder(tmp_path: Path) -> Path:
    (tmp_path / "store.db").mkdir()
    return tmp_path / "store.db"


def _not_a_database(tmp_path: Path) -> Path:
    (tmp_path / "store.db").write_bytes(b"this is not a database\n" * 200)
    return tmp_path / "store.db"


@pytest.mark.parametrize(
    ("place", "advice"),
    [
        (_under_a_file, "choose a location you can write to"),
        (_a_folder, "check that its folder exists"),
        (_not_a_database, "move it aside"),
    ],
    ids=["parent-is-a-file", "path-is-a-folder", "file-is-not-a-database"],
)
def test_unusable_location_raises_one_clear_store_error(
    tmp_path: Path, place: Callable[[Path], Path], advice: str
) -> None:
    path = place(tmp_path)

    with pytest.raises(StoreError) as caught:
        SQLiteStore(path)

    assert str(path) in str(caught.value)
    assert advice in str(caught.value)
    assert "\n" not in str(caught.value)


def test_closed_store_refuses_further_use(tmp_path: Path) -> None:
    opened = SQLiteStore(tmp_path / "store.db")
    opened.close()

    with pytest.raises(StoreError, match="is closed"):
        opened.get_job("job")
