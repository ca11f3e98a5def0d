"""Behaviour only the Datastore store has: URL, submission, indexes, errors.

Tests that need an emulator carry the ``emulator`` marker.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator, Sequence

import pytest

from sparkles_core.errors import BackendError, StoreError
from sparkles_core.models import Job, Task, TaskSpec, TaskStatus
from sparkles_core.plugins import open_store
from sparkles_core.store import datastore_submit, transitions
from sparkles_core.store.datastore import DatastoreStore
from sparkles_core.store.datastore_client import Datastore, DatastoreLocation
from sparkles_core.store.datastore_records import task_entity
from tests.core.conftest import DATASTORE_PROJECT
from tests.core.store_helpers import (
    CLUSTER,
    LEASE_S,
    SUCCESS,
    T0,
    must_claim,
    submit,
)
from tests.emulators.datastore import HOST_VARIABLE

# -- URLs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "location"),
    [
        ("datastore://proj", DatastoreLocation("proj")),
        ("datastore://proj/db-1", DatastoreLocation("proj", "db-1")),
        ("datastore://proj/(default)", DatastoreLocation("proj")),
        ("datastore://proj?namespace=ns", DatastoreLocation("proj", "", "ns")),
        ("datastore://p/db?namespace=ns", DatastoreLocation("p", "db", "ns")),
    ],
    ids=["project", "database", "default-database", "namespace", "all"],
)
def test_url_names_project_database_and_namespace(
    url: str, location: DatastoreLocation
) -> None:
    parsed = DatastoreLocation.from_url(url)

    assert parsed == location
    assert DatastoreLocation.from_url(parsed.url) == location


@pytest.mark.parametrize(
    "url",
    [
        "datastore://",
        "datastore:///db",
        "datastore://proj/db/extra",
        "datastore://proj?kind=Task",
        "datastore://proj?namespace=a&namespace=b",
        "sqlite://proj",
    ],
    ids=["empty", "no-project", "deep-path", "unknown-key", "two-namespaces", "other"],
)
def test_malformed_url_is_refused_with_the_forms_that_work(url: str) -> None:
    with pytest.raises(BackendError, match=r"datastore://PROJECT/DATABASE"):
        DatastoreStore.from_url(url)


def test_missing_google_client_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "google.cloud.datastore", None)
    # An earlier test may have imported it already: hide that too.
    if "google.cloud" in sys.modules:
        monkeypatch.delattr(sys.modules["google.cloud"], "datastore", raising=False)

    with pytest.raises(BackendError) as caught:
        DatastoreStore.from_url("datastore://proj")

    assert "pip install 'snakemake-executor-plugin-sparkles[gcp]'" in str(caught.value)


# -- with the emulator --------------------------------------------------------


@pytest.fixture
def ds_store(datastore_emulator: str) -> Iterator[DatastoreStore]:
    """Yield an empty Datastore store in a namespace of its own."""
    namespace = f"test-{uuid.uuid4().hex[:12]}"
    opened = DatastoreStore.from_url(
        f"datastore://{DATASTORE_PROJECT}?namespace={namespace}"
    )
    yield opened
    opened.close()


def make_job(
    job_id: str, count: int, huge_task: int | None = None
) -> tuple[Job, list[TaskSpec]]:
    """Return a job of ``count`` tasks; task ``huge_task`` is too big to store."""
    job = Job(
        id=job_id, cluster=CLUSTER, spec_hash="0", submit_time=T0, task_count=count
    )
    specs = [TaskSpec(command=["echo", str(n)]) for n in range(1, count + 1)]
    if huge_task is not None:
        # Datastore refuses a property over 1 MiB, so this task's commit fails.
        specs[huge_task - 1] = TaskSpec(command="true", env={"BIG": "x" * 1_100_000})
    return job, specs


def assert_nothing_of(store: DatastoreStore, job_id: str, count: int) -> None:
    """Fail unless no job ``job_id`` and none of its tasks can be seen or claimed."""
    assert store.get_job(job_id) is None
    assert store.list_jobs() == []
    assert store.get_tasks(f"{job_id}.{n}" for n in range(1, count + 1)) == []
    assert store.unfinished_count(CLUSTER) == 0
    assert store.claim(CLUSTER, "w1", LEASE_S, now=T0) is None


@pytest.mark.emulator
def test_open_store_opens_datastore_urls(ds_store: DatastoreStore) -> None:
    opened = open_store(ds_store.url)
    try:
        assert isinstance(opened, DatastoreStore) and opened.url == ds_store.url
        submit(opened, "job", 1)
        assert ds_store.get_job("job") is not None
    finally:
        opened.close()


@pytest.mark.emulator
def test_namespaces_keep_stores_apart(ds_store: DatastoreStore) -> None:
    other = DatastoreStore(
        DatastoreLocation(DATASTORE_PROJECT, "", "elsewhere-" + uuid.uuid4().hex[:8])
    )
    try:
        submit(ds_store, "job", 2)
        assert other.get_job("job") is None
        assert other.claim(CLUSTER, "w1", LEASE_S, now=T0) is None
    finally:
        other.close()


@pytest.mark.emulator
@pytest.mark.slow
def test_failed_commit_leaves_no_trace_of_the_job(ds_store: DatastoreStore) -> None:
    job, specs = make_job("big", 1600, huge_task=1200)

    with pytest.raises(StoreError) as caught:
        ds_store.create_job(job, specs)

    message = str(caught.value)
    assert "'big' was not submitted" in message and "tasks 1001-1500" in message
    assert "\n" not in message
    assert_nothing_of(ds_store, "big", 1600)
    assert [t.id for t in submit(ds_store, "big", 2)] == ["big.1", "big.2"]


@pytest.mark.emulator
def test_interrupted_submission_leaves_no_trace_of_the_job(
    ds_store: DatastoreStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_chunk = datastore_submit._write_chunk
    job, specs = make_job("job", 1200)

    def interrupted(db: Datastore, job: Job, chunk: Sequence[Task]) -> None:
        if chunk[0].index > 500:
            raise KeyboardInterrupt
        write_chunk(db, job, chunk)

    monkeypatch.setattr(datastore_submit, "_write_chunk", interrupted)

    with pytest.raises(KeyboardInterrupt):
        ds_store.create_job(job, specs)

    assert_nothing_of(ds_store, "job", 1200)


@pytest.mark.emulator
def test_half_written_job_is_invisible_and_never_claimed(
    ds_store: DatastoreStore,
) -> None:
    # A submitter killed outright between writing the tasks and publishing.
    job, specs = make_job("job", 3)
    tasks = transitions.new_tasks(job, specs)
    datastore_submit._reserve(ds_store._db, job, "token")
    datastore_submit._write_tasks(ds_store._db, job, tasks)

    assert ds_store.get_job("job") is None and ds_store.list_jobs() == []
    assert ds_store.claim(CLUSTER, "w1", LEASE_S, now=T0) is None
    with pytest.raises(StoreError, match="submission was interrupted"):
        submit(ds_store, "job", 3)

    ds_store.delete_job("job")

    assert ds_store.get_tasks(t.id for t in tasks) == []
    assert len(submit(ds_store, "job", 3)) == 3


@pytest.mark.emulator
def test_claim_passes_over_tasks_of_killed_jobs(ds_store: DatastoreStore) -> None:
    submit(ds_store, "dead", 60)
    ds_store.kill_job("dead")
    ds_store.reset([f"dead.{n}" for n in range(1, 61)])
    submit(ds_store, "alive", 1, submit_time=T0 + 1)

    assert must_claim(ds_store, "w1").id == "alive.1"


@pytest.mark.emulator
def test_finished_since_goes_by_status_not_a_stale_end_time(
    ds_store: DatastoreStore,
) -> None:
    submit(ds_store, "job", 2)
    for _ in range(2):
        ds_store.complete(must_claim(ds_store, "w1").id, "w1", SUCCESS)
    # Back to pending with its end time left behind, as a writer that knows
    # nothing of the ``ended`` property (or a hand edit) leaves an entity.
    task = ds_store.get_task("job.1")
    assert task is not None
    stale = transitions.ended_at(task)
    task.status = TaskStatus.PENDING
    entity = task_entity(ds_store._db, task)
    entity["ended"] = stale
    ds_store._db.put_multi([entity], "write a stale task")

    found = ds_store.finished_since(["job"], 0.0)

    assert [task.id for task in found] == ["job.2"]


@pytest.mark.emulator
def test_queries_need_only_the_shipped_indexes(
    index_checking_emulator: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(HOST_VARIABLE, index_checking_emulator)
    store = DatastoreStore.from_url(f"datastore://{DATASTORE_PROJECT}?namespace=ix")
    try:
        submit(store, "job", 2)
        held = [must_claim(store, "w1"), must_claim(store, "w2")]
        store.list_tasks("job")
        store.list_tasks("job", [TaskStatus.CLAIMED, TaskStatus.PENDING])
        assert len(store.claimed_tasks(CLUSTER)) == 2
        assert store.reset_owned_by(["nobody"], "node gone") == []
        assert [job.id for job in store.jobs_with_work(CLUSTER)] == ["job"]
        later = T0 + LEASE_S + 1
        taken = must_claim(store, "w3", now=later)  # an expired lease
        assert store.expire_leases(CLUSTER, now=later) == [
            t.id for t in held if t.id != taken.id
        ]
        store.kill_job("job")
        assert len(store.finished_since(["job"], T0)) == 2
        store.list_jobs()
        store.list_nodes(CLUSTER)
        store.delete_job("job")
        assert store.get_tasks(t.id for t in held) == []
        # The emulator does refuse a query whose composite index is missing.
        with pytest.raises(StoreError, match="index"):
            store._db.query("SparklesTask", [("status", "=", "pending")], ["owner"])
    finally:
        store.close()


@pytest.mark.emulator
def test_service_error_becomes_one_line_store_error(ds_store: DatastoreStore) -> None:
    job, specs = make_job("job", 1, huge_task=1)

    with pytest.raises(StoreError) as caught:
        ds_store.create_job(job, specs)

    message = str(caught.value)
    assert ds_store.url in message and "larger than 1 MiB" in message
    assert "\n" not in message
