"""Submit a job to Datastore all or nothing, in parallel commits of 500 tasks.

Datastore cannot write more than 500 entities atomically, so a job of 10,000
tasks is 20 separate commits. This module makes the set of commits behave as
one, in three steps:

1. **Reserve.** One transaction creates the job entity with ``ready`` false
   and a random ``submission`` token, or fails if the id is taken. Nothing else
   is written before the id is ours: task keys derive from the job id, so a
   task written first could overwrite a task of an existing job.
2. **Write.** The tasks go out in commits of 500, several at once (a thread
   pool). They are ordinary pending tasks, but a task is claimed only if its
   job entity is ready (see ``DatastoreStore.claim``), and readers treat a job
   that is not ready as absent; so a half-written job is invisible and leaves
   no claimable task.
3. **Publish.** One transaction sets ``ready``, after checking that the job
   entity still carries our token: this is the moment the job exists.

If any commit fails, or the submitter is interrupted (Ctrl-C), the writers
are stopped, every task key of the job is deleted (deleting a key never
written is harmless) and then the job entity; the error is re-raised. Only a
submitter killed outright can leave a job that is not ready behind: its tasks
are never claimed, and ``delete_job`` with its id removes it.
"""

from __future__ import annotations

import concurrent.futures
import logging
import secrets
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sparkles_core.errors import StoreError
from sparkles_core.models import Job, Task
from sparkles_core.store.datastore_client import MAX_WRITES, Datastore
from sparkles_core.store.datastore_records import (
    JOB,
    TASK,
    is_ready,
    job_entity,
    submission_of,
    task_entity,
)

if TYPE_CHECKING:
    from google.cloud.datastore import Entity, Transaction

__all__ = ["submit_job"]

# TODO: sweep abandoned submissions. A submitter killed outright (SIGKILL,
# power loss) between reserve and publish leaves a job entity that is not
# ready plus some of its tasks. They are never claimed and readers do not see
# the job, but unfinished_count still counts the tasks (so a monitor may keep
# nodes up for the cluster) and the job id stays taken until delete_job is
# called with it. A sweep could delete not-ready jobs older than an hour.

logger = logging.getLogger(__name__)

# Commits in flight at once. Each is one request of up to 500 entities; past
# about eight, building the requests (which holds the GIL) is what limits.
WRITERS = 8


def submit_job(db: Datastore, job: Job, tasks: Sequence[Task]) -> None:
    """Write ``job`` and its ``tasks`` so that they appear together or not at all."""
    token = secrets.token_hex(8)
    _reserve(db, job, token)
    try:
        _write_tasks(db, job, tasks)
        _publish(db, job, token)
    except BaseException as exc:
        _withdraw(db, job, len(tasks), token)
        if isinstance(exc, StoreError):
            raise StoreError(
                f"Job {job.id!r} was not submitted and nothing of it was kept: {exc}"
            ) from exc
        raise
    logger.info("Job %s: created with %d tasks", job.id, len(tasks))


def _reserve(db: Datastore, job: Job, token: str) -> None:
    """Create the job entity, not yet ready, unless the id is taken."""
    key = db.key(JOB, job.id)

    def body(transaction: Transaction) -> None:
        existing = db.get(key, transaction)
        if existing is not None:
            raise StoreError(_taken(db, job, existing))
        db.put(job_entity(db, job, False, token), transaction)

    db.transact(body, f"create job {job.id!r}")


def _write_tasks(db: Datastore, job: Job, tasks: Sequence[Task]) -> None:
    """Write ``tasks`` in commits of 500, several at a time; stop at a failure."""
    chunks = [tasks[n : n + MAX_WRITES] for n in range(0, len(tasks), MAX_WRITES)]
    pool = concurrent.futures.ThreadPoolExecutor(WRITERS, "sparkles-submit")
    try:
        futures = [pool.submit(_write_chunk, db, job, chunk) for chunk in chunks]
        done, _ = concurrent.futures.wait(
            futures, return_when=concurrent.futures.FIRST_EXCEPTION
        )
        for future in done:
            future.result()  # raises the first failure
    finally:
        # Never return (or clean up) while a commit may still land.
        pool.shutdown(wait=True, cancel_futures=True)


def _write_chunk(db: Datastore, job: Job, chunk: Sequence[Task]) -> None:
    """Write one commit's worth of tasks."""
    action = f"write tasks {chunk[0].index}-{chunk[-1].index} of job {job.id!r}"
    db.put_multi([task_entity(db, task) for task in chunk], action)


def _publish(db: Datastore, job: Job, token: str) -> None:
    """Make the job visible, if it is still the one this submission reserved."""
    key = db.key(JOB, job.id)

    def body(transaction: Transaction) -> None:
        entity = db.get(key, transaction)
        if entity is None or submission_of(entity) != token:
            raise StoreError(
                f"Job {job.id!r} was deleted or replaced while it was being "
                "submitted; submit it again."
            )
        db.put(job_entity(db, job, True, token), transaction)

    db.transact(body, f"publish job {job.id!r}")


def _withdraw(db: Datastore, job: Job, count: int, token: str) -> None:
    """Delete every task of a failed submission, then its job entity."""
    keys = [db.key(TASK, f"{job.id}.{n}") for n in range(1, count + 1)]
    try:
        db.delete_multi(keys, f"delete the tasks of unfinished job {job.id!r}")
        entity = db.get(db.key(JOB, job.id))
        if entity is not None and submission_of(entity) == token:
            db.delete_multi([entity.key], f"delete unfinished job {job.id!r}")
    except StoreError:
        logger.error(
            "Job %s: could not delete the half-written submission; its tasks "
            "are never claimed, and 'delete_job' with this id removes them",
            job.id,
            exc_info=True,
        )
        return
    logger.info("Job %s: submission withdrawn, %d task keys deleted", job.id, count)


def _taken(db: Datastore, job: Job, existing: Entity) -> str:
    """Return the message for a job id that is already in use."""
    if not is_ready(existing):
        return (
            f"Job {job.id!r} is being submitted by another process, or its "
            f"submission was interrupted, in {db.location.url!r}; pick another "
            "job name or delete the old job first."
        )
    return (
        f"Job {job.id!r} already exists in {db.location.url!r}; pick another "
        "job name or delete the old job first."
    )
