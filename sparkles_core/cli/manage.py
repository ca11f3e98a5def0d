"""Commands that act on jobs: fetch, kill, reset, delete.

The models, the storage errors and rich's prompt are imported where they
are used, which keeps ``sparkles --help`` quick.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sparkles_core import layout
from sparkles_core.cli.context import CliContext, pass_context
from sparkles_core.cli.tables import plural
from sparkles_core.errors import InputError

if TYPE_CHECKING:
    from sparkles_core.models import Job, Task, TaskStatus

__all__ = ["delete", "fetch", "kill", "reset"]

logger = logging.getLogger(__name__)

_TASK_ID = re.compile(r"^(?P<job>[^*?\[\]]+)\.(?P<index>\d+)$")
# Job ids named in the confirmation question; the rest are counted.
_NAMED_IN_QUESTION = 10
# History reasons of the tasks that reset puts back to pending.
_RESET = "reset with 'sparkles reset'"
_GONE = "its node is gone"


@click.command()
@click.argument("job_id", metavar="JOB")
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder to write into (default: ./JOB).",
)
@click.option(
    "--flat",
    is_flag=True,
    help="Write every output straight into DEST and each log as "
    "stdout-INDEX.txt; refuse if two tasks wrote one path with different "
    "content.",
)
@pass_context
def fetch(state: CliContext, job_id: str, dest: Path | None, flat: bool) -> None:
    """Download the output files and logs of a job's tasks.

    Each task's files go to DEST/INDEX/, with its log as stdout.txt. Every
    file is checked against its digest. Tasks that never started are
    skipped. JOB may be LAST.

    Example: sparkles fetch LAST --dest results
    """
    job = state.job(job_id)
    dest = dest if dest is not None else Path(job.id)
    tasks = [t for t in state.client.tasks(job.id) if t.log_key or t.result_key]
    if flat:
        _check_flat(state, tasks)
    count = 0
    for task in tasks:
        folder = dest if flat else dest / str(task.index)
        count += len(state.client.fetch(task, folder))
        log_name = f"stdout-{task.index}.txt" if flat else "stdout.txt"
        count += _fetch_log(state, task, folder / log_name)
    files, of = plural(count, "file"), plural(len(tasks), "task")
    state.say(f"Fetched {files} of {of} into {dest}.")


def _check_flat(state: CliContext, tasks: Sequence[Task]) -> None:
    """Raise InputError if two tasks wrote one path with different content."""
    writers: dict[str, tuple[str, str]] = {}
    for task in tasks:
        result = state.client.result(task)
        for output in result.outputs if result else []:
            digest, other = writers.setdefault(output.path, (output.digest, task.id))
            if digest != output.digest:
                raise InputError(
                    f"Tasks {other} and {task.id} both wrote {output.path!r} "
                    "with different content; fetch without --flat."
                )


def _fetch_log(state: CliContext, task: Task, path: Path) -> int:
    """Download the task's log to ``path``; return 1 if there was one."""
    from sparkles_cas.errors import ObjectNotFound

    if task.log_key is None:
        return 0
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        state.client.storage.get_file(task.log_key, path)
    except ObjectNotFound:
        # Workers upload no log for a command that printed nothing.
        path.write_bytes(b"")
    return 1


@click.command()
@click.argument("pattern")
@click.option(
    "--keepcluster",
    is_flag=True,
    help="Keep the cluster's nodes running (by default they are stopped "
    "once no job has work for them).",
)
@pass_context
def kill(state: CliContext, pattern: str, keepcluster: bool) -> None:
    """Kill jobs: their pending and running tasks become killed.

    PATTERN is a job id, LAST or a shell wildcard; a wildcard that matches
    no job leaves nothing to do, which is not an error. Afterwards each
    job's cluster is stopped unless another job still has work on it, or
    unless --keepcluster is given, which keeps the nodes for the next job.

    Example: sparkles kill 'sweep-*'
    """
    jobs = state.jobs(pattern, wildcard_may_match_none=True)
    if not jobs:
        state.say(f"No jobs match {pattern!r}; nothing to kill.")
        return
    for job in jobs:
        killed = state.client.kill(job.id, keep_cluster=True)
        state.say(f"Job {job.id}: killed {plural(killed, 'unfinished task')}.")
    if not keepcluster:
        _stop_idle_clusters(state, jobs)


def _stop_idle_clusters(state: CliContext, jobs: Sequence[Job]) -> None:
    """Stop the jobs' clusters that no job has work for, saying which."""
    for cluster in sorted({job.cluster for job in jobs}):
        if state.client.stop_cluster_if_idle(cluster):
            state.say(f"Cluster {cluster}: stopped.")
        else:
            state.say(f"Cluster {cluster}: kept, another job has work on it.")


@click.command()
@click.argument("target", metavar="PATTERN|TASK_ID")
@click.option("--all", "all_tasks", is_flag=True, help="Reset successful tasks too.")
@click.option(
    "--orphaned",
    is_flag=True,
    help="Instead, reset only claimed tasks whose node is gone or whose "
    "lease has expired.",
)
@pass_context
def reset(state: CliContext, target: str, all_tasks: bool, orphaned: bool) -> None:
    """Put failed tasks back to pending, so they run again.

    Resets the failed tasks, killed tasks and non-zero exits of the jobs
    PATTERN names (a job id, LAST or a shell wildcard); with --all, every
    finished task. A TASK_ID such as my-job.3 resets that one task. Tasks
    being run are left alone, and a killed job may run again. A wildcard
    that matches no job is not an error. No worker is started: run
    'sparkles watch JOB' to run the tasks.

    With --orphaned, the tasks reset are those still claimed by a node that
    is gone or has stopped renewing its lease; a watch does this by itself.
    As then, the attempt counts: a task out of attempts becomes failed.

    \b
    Examples:
      sparkles reset LAST
      sparkles reset 'sweep-*' --orphaned
    """
    if all_tasks and orphaned:
        raise click.UsageError("Give --all or --orphaned, not both.")
    task = _named_task(state, target)
    if task is not None:
        _reset_task(state, task, orphaned)
        return
    jobs = state.jobs(target, wildcard_may_match_none=True)
    if not jobs:
        state.say(f"No jobs match {target!r}; nothing to reset.")
    for job in jobs:
        if orphaned:
            _reset_orphans(state, job)
            continue
        tasks = state.client.tasks(job.id, _finished())
        chosen = [t.id for t in tasks if all_tasks or not t.succeeded]
        _reset_tasks(state, job.id, chosen)


def _finished() -> list[TaskStatus]:
    """Return the statuses a task does not leave by itself."""
    from sparkles_core.models import TaskStatus

    return [status for status in TaskStatus if status.finished]


def _named_task(state: CliContext, target: str) -> Task | None:
    """Return the task ``target`` names as ``JOB.INDEX``, if it is one."""
    match = _TASK_ID.match(target)
    if match is None:
        return None
    task = state.client.store.get_task(target)
    if task is None and state.client.store.get_job(match["job"]) is not None:
        raise InputError(
            f"Job {match['job']!r} has no task {match['index']}; "
            f"run 'sparkles show {match['job']}' to list its tasks."
        )
    return task


def _reset_task(state: CliContext, task: Task, orphaned: bool) -> None:
    if orphaned:
        _reset_orphans(state, state.client.job(task.job_id), only=task.id)
        return
    if not task.status.finished:
        state.say(f"Task {task.id} is {task.status.value}; nothing to reset.")
        return
    _reset_tasks(state, task.job_id, [task.id])


def _reset_orphans(state: CliContext, job: Job, only: str | None = None) -> None:
    """Hand back the job's claimed tasks whose node is gone or lease expired.

    The store checks each task again as it changes it, so a task whose
    worker renewed its lease or finished meanwhile is left alone, and the
    attempt counts as when a watch does this: the next one gets a number
    (and so a log) of its own, and a task out of attempts becomes failed.
    """
    from sparkles_core.models import TaskStatus

    client = state.client
    claimed = [
        task.id
        for task in client.tasks(job.id, [TaskStatus.CLAIMED])
        if only in (None, task.id)
    ]
    gone = [
        node.id
        for node in client.provisioner.refresh(job.cluster)
        if not node.status.alive
    ]
    changed = client.store.expire_leases(job.cluster, task_ids=claimed)
    if gone:
        changed += client.store.reset_owned_by(gone, _GONE, task_ids=claimed)
    if not changed:
        state.say(f"Job {job.id}: nothing to reset.")
        return
    tasks = client.store.get_tasks(changed)
    failed = sum(1 for task in tasks if task.status is TaskStatus.FAILED)
    back = len(changed) - failed
    line = f"Job {job.id}: {plural(back, 'task')} back to pending"
    if failed:
        line += f", {plural(failed, 'task')} out of attempts and now failed"
    state.say(line + _reopen_after_orphans(state, job.id, back))


def _reopen_after_orphans(state: CliContext, job_id: str, back: int) -> str:
    """Reopen the job if it has pending tasks; return how the report ends.

    A job whose orphans all ran out of attempts has nothing new to run, and
    reopening it would undo the outcome a watch recorded; a killed job stays
    killed, as whoever killed it meant.
    """
    from sparkles_core.models import JobStatus, TaskStatus

    if state.client.job(job_id).status is JobStatus.KILLED:
        return "; the job stays killed, so no worker will run them." if back else "."
    if not state.client.store.count_tasks(job_id)[TaskStatus.PENDING]:
        return "."
    _reopen(state, job_id)
    them = "them" if back else "its pending tasks"
    return f"; run 'sparkles watch {job_id}' to run {them}."


def _reset_tasks(state: CliContext, job_id: str, task_ids: Sequence[str]) -> None:
    """Reset the finished tasks among ``task_ids`` of one job."""
    count = state.client.store.reset(task_ids, _RESET, _finished())
    if not count:
        state.say(f"Job {job_id}: nothing to reset.")
        return
    _reopen(state, job_id)
    state.say(
        f"Job {job_id}: {plural(count, 'task')} back to pending; "
        f"run 'sparkles watch {job_id}' to run them."
    )


def _reopen(state: CliContext, job_id: str) -> None:
    """Mark a job whose tasks were reset as submitted again.

    Workers never claim the tasks of a killed job, and a watch records the
    outcome only of a submitted one.
    """
    from sparkles_core.models import JobStatus

    if state.client.job(job_id).status is not JobStatus.SUBMITTED:
        state.client.store.set_job_status(job_id, JobStatus.SUBMITTED)


@click.command()
@click.argument("pattern", default="*", required=False)
@click.option("-y", "--yes", is_flag=True, help="Do not ask before deleting.")
@pass_context
def delete(state: CliContext, pattern: str, yes: bool) -> None:
    """Delete jobs: their records, logs and results.

    PATTERN is a job id, LAST or a shell wildcard (default: every job).
    Unfinished tasks are killed first, and each job's cluster is stopped
    unless another job still has work on it. Output files stay in the
    content-addressed store, where other jobs may share them. When PATTERN
    matches more than one job, asks first unless -y is given.

    Example: sparkles delete 'test-*' -y
    """
    jobs = state.jobs(pattern, wildcard_may_match_none=True)
    if not jobs:
        state.say("No jobs to delete.")
        return
    if len(jobs) > 1 and not yes and not _confirm(state, jobs):
        state.say("Nothing deleted.")
        return
    for job in jobs:
        removed = _delete_job(state, job)
        tasks, files = plural(job.task_count, "task"), plural(removed, "file")
        state.say(f"Deleted job {job.id}: {tasks}, {files}.")
    _stop_idle_clusters(state, jobs)


def _confirm(state: CliContext, jobs: Sequence[Job]) -> bool:
    """Ask whether to delete the jobs; no answer (no terminal) means no."""
    names = ", ".join(job.id for job in jobs[:_NAMED_IN_QUESTION])
    if len(jobs) > _NAMED_IN_QUESTION:
        names += f" and {len(jobs) - _NAMED_IN_QUESTION} more"
    return state.confirm(f"Delete {len(jobs)} jobs ({names})?")


def _delete_job(state: CliContext, job: Job) -> int:
    """Kill the job, delete its records and its objects; return their count."""
    store, storage = state.client.store, state.client.storage
    store.kill_job(job.id)
    store.delete_job(job.id)
    keys = [info.key for info in storage.list(layout.job_prefix(job.id))]
    storage.delete(keys)
    logger.info("Job %s: deleted with %d stored objects", job.id, len(keys))
    return len(keys)
