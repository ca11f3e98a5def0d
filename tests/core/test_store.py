"""Behaviour of the job and task store, on every backend in STORE_BACKENDS.

These tests use only the ``Store`` interface, so a new backend passes or fails
them as they are. They do not rely on the order in which pending tasks are
handed out, which a backend may choose (SQLite: lowest index first; Datastore:
at random among the first few). Backend-only behaviour has its own module.
"""

from __future__ import annotations

import multiprocessing
import threading
from collections.abc import Callable

import pytest

from sparkles_core.errors import JobNotFound, StoreError
from sparkles_core.models import (
    Job,
    JobStatus,
    NodeClass,
    NodeReq,
    NodeStatus,
    ResourceUsage,
    TaskSpec,
    TaskStatus,
)
from sparkles_core.store.base import Completion, Store
from tests.core.store_helpers import (
    CLUSTER,
    LEASE_S,
    SUCCESS,
    T0,
    drain,
    must_claim,
    must_get,
    submit,
)

# -- jobs ---------------------------------------------------------------------


def test_create_job_stores_job_and_pending_tasks(store: Store) -> None:
    tasks = submit(store, "job", 3, max_attempts=5)

    assert [t.id for t in tasks] == ["job.1", "job.2", "job.3"]
    assert store.list_tasks("job") == tasks
    job = store.get_job("job")
    assert job is not None and job.task_count == 3
    for n, task in enumerate(tasks, start=1):
        assert (task.index, task.status, task.attempt) == (n, TaskStatus.PENDING, 0)
        assert task.max_attempts == 5
        assert task.spec.command == ["echo", str(n)]
        assert [(h.status, h.reason) for h in task.history] == [
            (TaskStatus.PENDING, "submitted")
        ]


def test_missing_job_and_task_read_as_none(store: Store) -> None:
    assert store.get_job("nope") is None
    assert store.get_task("nope.1") is None
    assert store.list_tasks("nope") == []


def test_duplicate_job_is_refused_and_nothing_written(store: Store) -> None:
    submit(store, "job", 2)

    with pytest.raises(StoreError, match=r"'job'.*another job name or delete"):
        submit(store, "job", 5, submit_time=T0 + 9)

    job = store.get_job("job")
    assert job is not None and (job.task_count, job.submit_time) == (2, T0)
    assert [t.id for t in store.list_tasks("job")] == ["job.1", "job.2"]
    assert store.get_task("job.3") is None


def test_job_with_wrong_task_count_is_refused(store: Store) -> None:
    job = Job(id="job", cluster=CLUSTER, spec_hash="0", submit_time=T0, task_count=4)

    with pytest.raises(StoreError, match="4 tasks"):
        store.create_job(job, [TaskSpec(command="true")])

    assert store.get_job("job") is None


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("*", ["exp-b", "exp-a", "other", "exp-c"]),
        ("exp-*", ["exp-b", "exp-a", "exp-c"]),
        ("exp-?", ["exp-b", "exp-a", "exp-c"]),
        ("[eo]*r", ["other"]),
        ("exp-a", ["exp-a"]),
        ("none*", []),
    ],
    ids=["all", "star", "question-mark", "class", "exact", "no-match"],
)
def test_list_jobs_matches_wildcard_oldest_first(
    store: Store, pattern: str, expected: list[str]
) -> None:
    for offset, job_id in enumerate(["exp-b", "exp-a", "other", "exp-c"]):
        submit(store, job_id, 1, submit_time=T0 + offset)

    assert [job.id for job in store.list_jobs(pattern)] == expected


def test_set_job_status_is_stored(store: Store) -> None:
    submit(store, "job", 1)

    store.set_job_status("job", JobStatus.COMPLETE)

    job = store.get_job("job")
    assert job is not None and job.status is JobStatus.COMPLETE


def test_set_status_of_missing_job_raises_job_not_found(store: Store) -> None:
    with pytest.raises(JobNotFound, match="'nope'"):
        store.set_job_status("nope", JobStatus.FAILED)


def test_delete_job_removes_job_and_its_tasks_only(store: Store) -> None:
    submit(store, "gone", 3)
    submit(store, "kept", 2)

    store.delete_job("gone")

    assert store.get_job("gone") is None
    assert store.get_tasks(["gone.1", "gone.2", "gone.3"]) == []
    assert len(store.list_tasks("kept")) == 2
    submit(store, "gone", 1)  # the name is free again


# -- task queries -------------------------------------------------------------


def test_get_tasks_reads_more_ids_than_one_query_can_bind(store: Store) -> None:
    submit(store, "job", 1200)
    wanted = [f"job.{n}" for n in range(1200, 0, -1)] + ["job.0", "other.1"]

    tasks = store.get_tasks(wanted)

    assert [t.id for t in tasks] == wanted[:1200]


def test_list_tasks_filters_by_status_in_index_order(store: Store) -> None:
    every = [t.id for t in submit(store, "job", 5)]
    done = must_claim(store, "w1")
    store.complete(done.id, "w1", SUCCESS)
    held = must_claim(store, "w1")

    pending = store.list_tasks("job", [TaskStatus.PENDING])
    started = store.list_tasks("job", [TaskStatus.CLAIMED, TaskStatus.COMPLETE])

    taken = {done.id, held.id}
    assert [t.id for t in started] == [i for i in every if i in taken]
    assert [t.id for t in pending] == [i for i in every if i not in taken]
    assert {t.id: t.status for t in started} == {
        done.id: TaskStatus.COMPLETE,
        held.id: TaskStatus.CLAIMED,
    }


def test_count_tasks_counts_every_status(store: Store) -> None:
    submit(store, "job", 5, max_attempts=1)
    store.complete(must_claim(store, "w1").id, "w1", SUCCESS)
    store.fail(must_claim(store, "w1").id, "w1", "staging failed")
    must_claim(store, "w1")

    assert store.count_tasks("job") == {
        TaskStatus.PENDING: 2,
        TaskStatus.CLAIMED: 1,
        TaskStatus.COMPLETE: 1,
        TaskStatus.FAILED: 1,
        TaskStatus.KILLED: 0,
    }


def test_claimed_tasks_and_unfinished_count_are_per_cluster(store: Store) -> None:
    submit(store, "job", 3)
    submit(store, "elsewhere", 4, cluster="cluster-b")
    store.complete(must_claim(store, "w1").id, "w1", SUCCESS)
    held = must_claim(store, "w2")

    assert [t.id for t in store.claimed_tasks(CLUSTER)] == [held.id]
    assert store.unfinished_count(CLUSTER) == 2
    assert store.unfinished_count("cluster-b") == 4
    assert store.claimed_tasks("cluster-b") == []


# -- claiming -----------------------------------------------------------------


def test_claim_takes_each_task_of_its_cluster_once(store: Store) -> None:
    submit(store, "job", 3)
    submit(store, "elsewhere", 2, cluster="cluster-b")

    claimed = [must_claim(store, f"w{n}").id for n in range(3)]

    assert sorted(claimed) == ["job.1", "job.2", "job.3"]
    assert store.claim(CLUSTER, "w9", LEASE_S, now=T0) is None
    assert store.count_tasks("elsewhere")[TaskStatus.PENDING] == 2


def test_claim_starts_an_attempt_under_a_lease(store: Store) -> None:
    submit(store, "job", 1)

    task = must_claim(store, "w1", now=T0 + 5)

    assert (task.status, task.owner, task.attempt) == (TaskStatus.CLAIMED, "w1", 1)
    assert task.lease_expires == T0 + 5 + LEASE_S
    assert must_get(store, "job.1") == task
    last = task.history[-1]
    assert (last.status, last.owner, last.time) == (TaskStatus.CLAIMED, "w1", T0 + 5)


def test_claim_clears_what_the_previous_attempt_left(store: Store) -> None:
    submit(store, "job", 1)
    task = must_claim(store, "w1")
    store.set_log_key(task.id, "w1", "logs/job.1/1/log.txt")
    store.release(task.id, "w1", "preempted", now=T0 + 1)

    again = must_claim(store, "w2", now=T0 + 2)

    assert (again.attempt, again.owner, again.log_key) == (2, "w2", None)
    assert again.result_key is None and again.failure_reason is None


def test_claim_takes_over_an_expired_lease_and_says_why(store: Store) -> None:
    submit(store, "job", 1)
    must_claim(store, "w1", now=T0)
    assert store.claim(CLUSTER, "w2", LEASE_S, now=T0 + LEASE_S - 1) is None

    task = must_claim(store, "w2", now=T0 + LEASE_S + 1)

    assert (task.owner, task.attempt) == ("w2", 2)
    reasons = [h.reason for h in task.history]
    assert "lease expired, was held by w1" in reasons


def test_claim_fails_expired_task_out_of_attempts_and_takes_next(
    store: Store,
) -> None:
    submit(store, "job", 2, max_attempts=2)
    spent = must_claim(store, "w1", now=T0).id
    store.release(spent, "w1", "preempted", now=T0)
    must_claim(store, "w1", now=T0)
    must_claim(store, "w1", now=T0)  # both held; ``spent`` on its last attempt
    (fresh,) = {"job.1", "job.2"} - {spent}

    task = must_claim(store, "w2", now=T0 + LEASE_S + 1)

    assert (task.id, task.attempt) == (fresh, 2)
    assert store.claim(CLUSTER, "w3", LEASE_S, now=T0 + LEASE_S + 1) is None
    lost = must_get(store, spent)
    assert lost.status is TaskStatus.FAILED
    assert lost.failure_reason is not None
    assert "lease expired, was held by w1" in lost.failure_reason


def test_claim_is_exclusive_across_threads(store: Store) -> None:
    submit(store, "job", 300)
    claimed: list[list[str]] = [[] for _ in range(6)]

    def work(slot: int) -> None:
        owner = f"thread-{slot}"
        while (task := store.claim(CLUSTER, owner, 600.0)) is not None:
            claimed[slot].append(task.id)
            assert store.complete(task.id, owner, SUCCESS)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    every = [task_id for ids in claimed for task_id in ids]
    assert sorted(every) == sorted(f"job.{n}" for n in range(1, 301))
    assert store.count_tasks("job")[TaskStatus.COMPLETE] == 300


# Tasks drained by four processes, by URL scheme: the Datastore emulator takes
# tens of milliseconds per query, so it drains fewer than SQLite.
PROCESS_DRAIN_TASKS = {"sqlite": 3000, "datastore": 1000}


@pytest.mark.slow
def test_claim_is_exclusive_across_processes(store: Store) -> None:
    count, workers = PROCESS_DRAIN_TASKS[store.url.partition(":")[0]], 4
    submit(store, "job", count)
    context = multiprocessing.get_context("spawn")

    with context.Pool(workers) as pool:
        args = [(store.url, CLUSTER, f"node-{n}") for n in range(workers)]
        claimed = pool.starmap(drain, args)

    every = [task_id for ids in claimed for task_id in ids]
    assert len(every) == len(set(every)) == count
    assert sum(1 for ids in claimed if ids) > 1, "one worker took everything"
    tasks = store.list_tasks("job")
    assert all(t.status is TaskStatus.COMPLETE and t.attempt == 1 for t in tasks)


# -- writes by the owner ------------------------------------------------------

OwnerWrite = Callable[[Store, str, str], bool]

OWNER_WRITES: dict[str, OwnerWrite] = {
    "renew": lambda s, t, o: s.renew(t, o, LEASE_S, now=T0 + 100),
    "set_log_key": lambda s, t, o: s.set_log_key(t, o, "logs/x.txt"),
    "complete": lambda s, t, o: s.complete(t, o, SUCCESS),
    "fail": lambda s, t, o: s.fail(t, o, "upload failed"),
    "release": lambda s, t, o: s.release(t, o, "preempted", now=T0 + 100),
}


@pytest.mark.parametrize("write", OWNER_WRITES.values(), ids=OWNER_WRITES.keys())
def test_owner_who_lost_the_lease_cannot_write(store: Store, write: OwnerWrite) -> None:
    submit(store, "job", 1)
    must_claim(store, "w1", now=T0)
    must_claim(store, "w2", now=T0 + LEASE_S + 1)
    before = must_get(store, "job.1")

    assert write(store, "job.1", "w1") is False

    assert must_get(store, "job.1") == before
    assert write(store, "job.1", "w2") is True


@pytest.mark.parametrize("write", OWNER_WRITES.values(), ids=OWNER_WRITES.keys())
def test_unclaimed_or_finished_task_refuses_writes(
    store: Store, write: OwnerWrite
) -> None:
    submit(store, "job", 2)
    done = must_claim(store, "w1").id
    store.complete(done, "w1", SUCCESS)
    (waiting,) = {"job.1", "job.2"} - {done}

    assert write(store, done, "w1") is False
    assert write(store, waiting, "w1") is False
    assert write(store, "job.404", "w1") is False


def test_complete_records_what_the_worker_reported(store: Store) -> None:
    submit(store, "job", 1)
    must_claim(store, "w1")

    assert store.complete("job.1", "w1", SUCCESS)

    task = must_get(store, "job.1")
    assert task.succeeded and task.lease_expires is None
    assert (task.started, task.finished) == (SUCCESS.started, SUCCESS.finished)
    assert (task.usage, task.result_key) == (SUCCESS.usage, SUCCESS.result_key)
    assert [(h.status, h.owner) for h in task.history] == [
        (TaskStatus.PENDING, None),
        (TaskStatus.CLAIMED, "w1"),
        (TaskStatus.COMPLETE, "w1"),
    ]


def test_complete_keeps_signal_apart_from_exit_code(store: Store) -> None:
    submit(store, "job", 1)
    must_claim(store, "w1")
    killed = Completion(None, 9, T0, T0 + 1, ResourceUsage(), None)

    store.complete("job.1", "w1", killed)

    task = must_get(store, "job.1")
    assert (task.status, task.exit_code, task.signal) == (
        TaskStatus.COMPLETE,
        None,
        9,
    )
    assert not task.succeeded


def test_complete_records_a_timeout_with_its_limit(store: Store) -> None:
    submit(store, "job", 1, timeout=60)
    must_claim(store, "w1")
    stopped = Completion(None, 15, T0, T0 + 60, ResourceUsage(), None, timed_out=True)

    assert store.complete("job.1", "w1", stopped)

    task = must_get(store, "job.1")
    assert (task.status, task.timed_out, task.signal) == (
        TaskStatus.COMPLETE,
        True,
        15,
    )
    assert task.history[-1].reason == "timed out after 60 s"
    assert not task.succeeded


def test_next_attempt_forgets_an_earlier_timeout(store: Store) -> None:
    submit(store, "job", 1, timeout=60)
    must_claim(store, "w1")
    stopped = Completion(None, 15, T0, T0 + 60, ResourceUsage(), None, timed_out=True)
    store.complete("job.1", "w1", stopped)
    store.reset(["job.1"], reason="retry by user")

    again = must_claim(store, "w2", now=T0 + 100)

    assert again.timed_out is False and again.signal is None


def test_command_that_ends_in_time_is_not_timed_out(store: Store) -> None:
    submit(store, "job", 1, timeout=60)
    must_claim(store, "w1")

    store.complete("job.1", "w1", SUCCESS)

    task = must_get(store, "job.1")
    assert task.timed_out is False
    assert task.history[-1].reason == "exit code 0"


def test_fail_records_the_reason(store: Store) -> None:
    submit(store, "job", 1)
    must_claim(store, "w1")

    store.fail("job.1", "w1", "download digest mismatch")

    task = must_get(store, "job.1")
    assert (task.status, task.failure_reason) == (
        TaskStatus.FAILED,
        "download digest mismatch",
    )
    assert task.history[-1].reason == "download digest mismatch"


def test_renewed_lease_is_not_taken_over(store: Store) -> None:
    submit(store, "job", 1)
    must_claim(store, "w1", now=T0)

    assert store.renew("job.1", "w1", LEASE_S, now=T0 + LEASE_S - 1)

    assert store.claim(CLUSTER, "w2", LEASE_S, now=T0 + LEASE_S + 1) is None
    assert store.expire_leases(CLUSTER, now=T0 + LEASE_S + 1) == []


def test_set_log_key_points_at_the_attempts_log(store: Store) -> None:
    submit(store, "job", 1)
    must_claim(store, "w1")

    assert store.set_log_key("job.1", "w1", "logs/job.1/1/log.txt")

    assert must_get(store, "job.1").log_key == "logs/job.1/1/log.txt"


def test_release_returns_to_pending_until_attempts_run_out(store: Store) -> None:
    submit(store, "job", 1, max_attempts=2)
    must_claim(store, "w1", now=T0)

    assert store.release("job.1", "w1", "preempted", now=T0 + 1)
    task = must_get(store, "job.1")
    assert (task.status, task.owner, task.attempt) == (TaskStatus.PENDING, None, 1)
    assert task.history[-1].reason == "preempted"

    must_claim(store, "w2", now=T0 + 2)
    assert store.release("job.1", "w2", "preempted", now=T0 + 3)
    task = must_get(store, "job.1")
    assert (task.status, task.attempt) == (TaskStatus.FAILED, 2)
    assert task.failure_reason is not None
    assert task.failure_reason.startswith("preempted")
    assert store.claim(CLUSTER, "w3", LEASE_S, now=T0 + 4) is None


# -- recovery by the monitor --------------------------------------------------


def test_expire_leases_returns_expired_tasks_to_pending(store: Store) -> None:
    submit(store, "job", 2)
    first = must_claim(store, "w1", now=T0).id
    second = must_claim(store, "w2", now=T0 + 10).id

    assert store.expire_leases(CLUSTER, now=T0 + LEASE_S - 1) == []
    assert store.expire_leases(CLUSTER, now=T0 + LEASE_S + 1) == [first]

    task = must_get(store, first)
    assert (task.status, task.owner, task.lease_expires) == (
        TaskStatus.PENDING,
        None,
        None,
    )
    assert task.history[-1].reason == "lease expired, was held by w1"
    assert must_get(store, second).owner == "w2"


def test_expire_leases_fails_tasks_out_of_attempts(store: Store) -> None:
    submit(store, "job", 1, max_attempts=1)
    must_claim(store, "w1", now=T0)

    assert store.expire_leases(CLUSTER, now=T0 + LEASE_S + 1) == ["job.1"]

    task = must_get(store, "job.1")
    assert task.status is TaskStatus.FAILED
    assert task.failure_reason is not None
    assert "lease expired, was held by w1" in task.failure_reason


def test_reset_owned_by_frees_only_the_gone_nodes_tasks(store: Store) -> None:
    submit(store, "job", 3)
    lost = [must_claim(store, "gone"), must_claim(store, "gone")]
    kept = must_claim(store, "alive")

    changed = store.reset_owned_by(["gone", "never-seen"], "node gone")

    assert changed == [t.id for t in sorted(lost, key=lambda t: t.index)]
    for task_id in changed:
        task = must_get(store, task_id)
        assert (task.status, task.owner) == (TaskStatus.PENDING, None)
        assert task.history[-1].reason == "node gone, was held by gone"
    assert must_get(store, kept.id).owner == "alive"
    assert store.complete(changed[0], "gone", SUCCESS) is False


def test_reset_owned_by_fails_tasks_out_of_attempts(store: Store) -> None:
    submit(store, "job", 1, max_attempts=1)
    must_claim(store, "gone")

    assert store.reset_owned_by(["gone"], "node gone") == ["job.1"]

    assert must_get(store, "job.1").status is TaskStatus.FAILED


def test_reset_gives_a_fresh_attempt_budget(store: Store) -> None:
    submit(store, "job", 1, max_attempts=1)
    store.fail(must_claim(store, "w1").id, "w1", "staging failed")

    assert store.reset(["job.1"], reason="retry by user") == 1

    task = must_get(store, "job.1")
    assert (task.status, task.attempt, task.owner) == (TaskStatus.PENDING, 0, None)
    assert task.failure_reason is None and task.exit_code is None
    assert task.history[-1].reason == "retry by user"
    assert must_claim(store, "w2").attempt == 1


def test_reset_with_statuses_touches_only_those(store: Store) -> None:
    submit(store, "job", 3, max_attempts=1)
    done = must_claim(store, "w1").id
    store.complete(done, "w1", SUCCESS)
    store.fail(must_claim(store, "w1").id, "w1", "upload failed")

    count = store.reset(["job.1", "job.2", "job.3"], statuses=[TaskStatus.FAILED])

    assert count == 1
    statuses = {t.id: t.status for t in store.list_tasks("job")}
    assert statuses.pop(done) is TaskStatus.COMPLETE
    assert set(statuses.values()) == {TaskStatus.PENDING}


def test_kill_job_stops_unfinished_tasks(store: Store) -> None:
    submit(store, "job", 4)
    store.complete(must_claim(store, "w1").id, "w1", SUCCESS)
    running = must_claim(store, "w2")

    assert store.kill_job("job") == 3

    job = store.get_job("job")
    assert job is not None and job.status is JobStatus.KILLED
    counts = store.count_tasks("job")
    assert (counts[TaskStatus.COMPLETE], counts[TaskStatus.KILLED]) == (1, 3)
    assert store.complete(running.id, "w2", SUCCESS) is False
    assert must_get(store, running.id).history[-1].reason == "job killed"
    assert store.claim(CLUSTER, "w3", LEASE_S, now=T0) is None


def test_task_of_killed_job_is_never_claimed(store: Store) -> None:
    submit(store, "job", 2)
    store.kill_job("job")

    store.reset(["job.1", "job.2"])

    assert store.claim(CLUSTER, "w1", LEASE_S, now=T0) is None


def test_kill_missing_job_raises_job_not_found(store: Store) -> None:
    with pytest.raises(JobNotFound):
        store.kill_job("nope")


# -- nodes --------------------------------------------------------------------


def make_node(node_id: str, cluster: str, created: float) -> NodeReq:
    """Return a submitted preemptible node record."""
    return NodeReq(
        id=node_id,
        cluster=cluster,
        node_class=NodeClass.PREEMPTIBLE,
        created=created,
        updated=created,
    )


def test_nodes_are_put_listed_and_deleted(store: Store) -> None:
    store.put_node(make_node("n2", CLUSTER, T0 + 1))
    store.put_node(make_node("n1", CLUSTER, T0))
    store.put_node(make_node("n3", "cluster-b", T0))
    running = make_node("n2", CLUSTER, T0 + 1)
    running.status = NodeStatus.RUNNING
    store.put_node(running)

    assert [n.id for n in store.list_nodes(CLUSTER)] == ["n1", "n2"]
    assert store.list_nodes(CLUSTER)[1].status is NodeStatus.RUNNING
    assert len(store.list_nodes()) == 3

    store.delete_nodes(["n1", "n3", "never-seen"])

    assert [n.id for n in store.list_nodes()] == ["n2"]
