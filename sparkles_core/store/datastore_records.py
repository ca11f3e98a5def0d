"""How jobs, tasks and nodes are laid out as Datastore entities.

Each record is one entity whose key name is the record's id::

    SparklesJob   status | cluster | submit_time | ready* | submission* | record*
    SparklesTask  job_id | idx | cluster | status | owner | lease_expires | ended
                  | record*
    SparklesNode  cluster | record*

    (* not indexed)

``record`` is the whole pydantic model as JSON and is what is read back; the
other properties copy the fields that queries filter or sort on, and are
rewritten from the model on every write, so they never disagree with it.
A task's ``ended`` is when it finished (null while it is unfinished), see
:func:`~sparkles_core.store.transitions.ended_at`; tasks written before it
existed lack it, and so never appear as newly finished.

``ready`` and ``submission`` belong to the submission protocol of
:mod:`sparkles_core.store.datastore_submit`: a job entity whose ``ready`` is
false is still being written (or was abandoned half way), is invisible to
readers and its tasks are never claimed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sparkles_core.models import Job, JobStatus, NodeReq, Task
from sparkles_core.store import transitions
from sparkles_core.store.datastore_client import Datastore

if TYPE_CHECKING:
    from google.cloud.datastore import Entity

__all__ = [
    "JOB",
    "NODE",
    "TASK",
    "is_live",
    "is_ready",
    "job_entity",
    "load_job",
    "load_node",
    "load_task",
    "node_entity",
    "submission_of",
    "task_entity",
    "with_status",
]

JOB = "SparklesJob"
TASK = "SparklesTask"
NODE = "SparklesNode"

_UNINDEXED_JOB = ("record", "ready", "submission")
_UNINDEXED = ("record",)


def task_entity(db: Datastore, task: Task) -> Entity:
    """Return the entity that stores ``task``."""
    values: dict[str, object] = {
        "job_id": task.job_id,
        "idx": task.index,
        "cluster": task.cluster,
        "status": str(task.status),
        "owner": task.owner,
        "lease_expires": task.lease_expires,
        "ended": transitions.ended_at(task),
        "record": task.model_dump_json(),
    }
    return db.entity(db.key(TASK, task.id), values, _UNINDEXED)


def job_entity(db: Datastore, job: Job, ready: bool, submission: str) -> Entity:
    """Return the entity that stores ``job``, visible to readers if ``ready``."""
    values: dict[str, object] = {
        "status": str(job.status),
        "cluster": job.cluster,
        "submit_time": job.submit_time,
        "ready": ready,
        "submission": submission,
        "record": job.model_dump_json(),
    }
    return db.entity(db.key(JOB, job.id), values, _UNINDEXED_JOB)


def node_entity(db: Datastore, node: NodeReq) -> Entity:
    """Return the entity that stores ``node``."""
    values: dict[str, object] = {
        "cluster": node.cluster,
        "record": node.model_dump_json(),
    }
    return db.entity(db.key(NODE, node.id), values, _UNINDEXED)


def load_task(entity: Entity) -> Task:
    """Return the task stored in ``entity``."""
    return Task.model_validate_json(entity["record"])


def load_job(entity: Entity) -> Job:
    """Return the job stored in ``entity``."""
    return Job.model_validate_json(entity["record"])


def load_node(entity: Entity) -> NodeReq:
    """Return the node stored in ``entity``."""
    return NodeReq.model_validate_json(entity["record"])


def is_ready(entity: Entity | None) -> bool:
    """Return True if ``entity`` is a job whose submission has finished."""
    return entity is not None and entity.get("ready", False) is True


def is_live(entity: Entity | None) -> bool:
    """Return True if ``entity`` is a finished submission that was not killed."""
    return (
        is_ready(entity)
        and entity is not None
        and entity["status"] != str(JobStatus.KILLED)
    )


def submission_of(entity: Entity) -> str:
    """Return the token of the submission that wrote job ``entity``."""
    return str(entity.get("submission", ""))


def with_status(db: Datastore, entity: Entity, status: JobStatus) -> Entity:
    """Return job ``entity`` rewritten with ``status``."""
    job = load_job(entity)
    job.status = status
    return job_entity(db, job, is_ready(entity), submission_of(entity))
