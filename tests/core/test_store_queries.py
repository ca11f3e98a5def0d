"""The store queries monitors run every few seconds, on every backend.

Like ``test_store``, these use only the ``Store`` interface and do not rely
on which pending task a backend hands out first.
"""

from __future__ import annotations

import time

from sparkles_core.models import JobStatus, TaskStatus
from sparkles_core.store import transitions
from sparkles_core.store.base import Store
from tests.core.store_helpers import (
    CLUSTER,
    LEASE_S,
    SUCCESS,
    T0,
    must_claim,
    must_get,
    submit,
)


def ended(store: Store, task_id: str) -> float:
    """Return when the task finished, failing the test if it has not."""
    moment = transitions.ended_at(must_get(store, task_id))
    assert moment is not None, f"task {task_id} has not finished"
    return moment


# -- counts of many jobs --------------------------------------------------------


def test_count_tasks_by_job_counts_each_job_given(store: Store) -> None:
    submit(store, "a", 3, max_attempts=1)
    submit(store, "b", 2, cluster="cluster-b")
    store.complete(must_claim(store, "w1").id, "w1", SUCCESS)
    store.fail(must_claim(store, "w1").id, "w1", "staging failed")
    store.kill_job("b")

    counts = store.count_tasks_by_job(["a", "b", "nope"])

    assert counts == {
        "a": store.count_tasks("a"),
        "b": store.count_tasks("b"),
        "nope": dict.fromkeys(TaskStatus, 0),
    }
    assert counts["a"][TaskStatus.COMPLETE] == counts["a"][TaskStatus.FAILED] == 1
    assert counts["b"][TaskStatus.KILLED] == 2


def test_count_tasks_by_job_of_no_jobs_is_empty(store: Store) -> None:
    assert store.count_tasks_by_job([]) == {}


# -- newly finished tasks -------------------------------------------------------


def test_finished_since_returns_tasks_finished_from_then_oldest_first(
    store: Store,
) -> None:
    submit(store, "job", 4, max_attempts=1)
    submit(store, "other", 1, cluster="cluster-b")
    first = must_claim(store, "w1").id
    store.complete(first, "w1", SUCCESS)
    time.sleep(0.01)  # the second finish is stamped strictly later
    second = must_claim(store, "w1").id
    store.fail(second, "w1", "upload failed")
    must_claim(store, "w1")  # claimed: not finished
    done = store.claim("cluster-b", "w2", LEASE_S, now=T0)
    assert done is not None
    store.complete(done.id, "w2", SUCCESS)

    assert [t.id for t in store.finished_since(["job"], 0.0)] == [first, second]
    later = store.finished_since(["job", "nope"], ended(store, second))
    assert [t.id for t in later] == [second]
    assert store.finished_since(["job"], ended(store, second) + 1) == []
    both = store.finished_since(["job", "other"], 0.0)
    assert {t.id for t in both} == {first, second, done.id}


def test_finished_since_counts_kills_and_forgets_resets(store: Store) -> None:
    submit(store, "job", 3)
    done = must_claim(store, "w1").id
    store.complete(done, "w1", SUCCESS)
    store.reset([done])
    store.kill_job("job")

    found = store.finished_since(["job"], 0.0)

    assert {t.id for t in found} == {"job.1", "job.2", "job.3"}
    assert {t.status for t in found} == {TaskStatus.KILLED}
    store.reset(["job.1", "job.2", "job.3"])
    assert store.finished_since(["job"], 0.0) == []


# -- jobs that still have work ----------------------------------------------------


def test_jobs_with_work_are_the_clusters_live_jobs_with_unfinished_tasks(
    store: Store,
) -> None:
    # Each job is submitted once the one before has been claimed from.
    submit(store, "running", 1, submit_time=T0 + 1)
    must_claim(store, "w1")
    submit(store, "done", 1, submit_time=T0 + 2)
    store.complete(must_claim(store, "w1").id, "w1", SUCCESS)
    submit(store, "waiting", 2, submit_time=T0 + 3)
    submit(store, "killed", 2, submit_time=T0 + 4)
    store.kill_job("killed")
    store.reset(["killed.1", "killed.2"])  # pending again, but the job is killed
    submit(store, "elsewhere", 1, cluster="cluster-b")

    found = store.jobs_with_work(CLUSTER)

    assert [job.id for job in found] == ["running", "waiting"]
    assert [job.id for job in store.jobs_with_work("cluster-b")] == ["elsewhere"]
    assert store.jobs_with_work("idle") == []


def test_a_reset_job_marked_complete_still_has_work(store: Store) -> None:
    submit(store, "job", 1)
    store.complete(must_claim(store, "w1").id, "w1", SUCCESS)
    store.set_job_status("job", JobStatus.COMPLETE)
    assert store.jobs_with_work(CLUSTER) == []

    store.reset(["job.1"])

    assert [job.id for job in store.jobs_with_work(CLUSTER)] == ["job"]


# -- orphans among some tasks ---------------------------------------------------


def test_expire_leases_among_tasks_leaves_the_others(store: Store) -> None:
    submit(store, "job", 3)
    held = [must_claim(store, f"w{n}") for n in range(3)]
    later = T0 + LEASE_S + 1

    changed = store.expire_leases(CLUSTER, now=later, task_ids=[held[1].id, "x.1"])

    assert changed == [held[1].id]
    assert must_get(store, held[1].id).status is TaskStatus.PENDING
    for task in (held[0], held[2]):
        assert must_get(store, task.id).owner == task.owner
    assert store.expire_leases("cluster-b", now=later, task_ids=[held[0].id]) == []
    assert store.expire_leases(CLUSTER, now=T0, task_ids=[held[0].id]) == []


def test_reset_owned_by_among_tasks_counts_the_attempt(store: Store) -> None:
    submit(store, "job", 2, max_attempts=1)
    gone = [must_claim(store, "gone"), must_claim(store, "gone")]
    first, second = sorted(gone, key=lambda task: task.index)

    changed = store.reset_owned_by(["gone"], "node gone", task_ids=[first.id])

    assert changed == [first.id]
    lost = must_get(store, first.id)
    assert (lost.status, lost.attempt) == (TaskStatus.FAILED, 1)
    assert must_get(store, second.id).owner == "gone"
    assert store.reset_owned_by(["alive"], "node gone", task_ids=[second.id]) == []
    assert store.complete(first.id, "gone", SUCCESS) is False
