"""Commands that look at jobs without changing them: status and logs.

Task outcomes are shown in the words of :class:`~.tables.Outcome`: a
``complete`` task is ``ok`` when its command exited 0 and ``nonzero``
otherwise (a signal included); ``failed`` means Sparkles could not run it.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from sparkles_core.cli.context import CliContext, pass_context
from sparkles_core.cli.summary import (
    claim_counts,
    peak_memory,
    print_spreads,
    run_times,
)
from sparkles_core.cli.tables import (
    Column,
    Outcome,
    describe_exit,
    exit_style,
    format_time,
    outcome_of,
    plural,
    print_table,
    status_style,
    write_text,
)

if TYPE_CHECKING:
    from sparkles_cas.storage import ObjectStorage
    from sparkles_core.models import Job, Task

__all__ = ["logs", "status"]

logger = logging.getLogger(__name__)

# Enough of a log's end to hold its last lines, without reading a log of
# gigabytes to show twenty of them.
TAIL_BYTES = 256 * 1024

_STATUS_COLUMNS = [
    Column("job"),
    Column("status", style=status_style),
    Column("tasks", numeric=True),
    *(Column(outcome.value, numeric=True) for outcome in Outcome),
    Column("nodes", numeric=True),
]


@click.command()
@click.argument("pattern", default="*", required=False)
@click.option("--stats", is_flag=True, help="Add claims, run time and memory spreads.")
@click.option("--failed", is_flag=True, help="List failed tasks and non-zero exits.")
@pass_context
def status(state: CliContext, pattern: str, stats: bool, failed: bool) -> None:
    """Show each job with how many of its tasks are in each state.

    PATTERN is a job id, LAST, or a shell wildcard (default: every job).
    Columns: pending and claimed tasks have not finished; ok exited 0;
    nonzero exited with another code or was killed by a signal; failed
    could not be run by Sparkles; killed were stopped by 'sparkles kill';
    nodes counts the live nodes of the job's cluster.

    Example: sparkles status 'sweep-*' --failed
    """
    jobs = _select_jobs(state, pattern)
    if not jobs:
        state.say("No jobs yet.")
        return
    rows, alive = [], _NodeCounter(state)
    for job in jobs:
        rows.append(_status_row(job, _count_outcomes(state, job), alive(job)))
    print_table(state.console, _STATUS_COLUMNS, rows)
    if stats or failed:
        for job in jobs:
            _print_details(state, job, stats, failed)


def _print_details(state: CliContext, job: Job, stats: bool, failed: bool) -> None:
    """Print the job's spreads and failed tasks, as asked."""
    tasks = state.client.tasks(job.id)
    if stats:
        metrics = [claim_counts(tasks), run_times(tasks), peak_memory(tasks)]
        print_spreads(state, metrics, title=f"Job {job.id}: statistics")
    if failed:
        _print_problems(state, job, tasks)


def _select_jobs(state: CliContext, pattern: str) -> list[Job]:
    """Return the jobs ``pattern`` names; "*" may name none."""
    if pattern == "*":
        return state.client.store.list_jobs("*")
    return state.jobs(pattern)


class _NodeCounter:
    """Count live nodes per cluster, asking the provisioner once per cluster."""

    def __init__(self, state: CliContext) -> None:
        self._state = state
        self._alive: dict[str, int] = {}

    def __call__(self, job: Job) -> int:
        if job.cluster not in self._alive:
            nodes = self._state.client.provisioner.refresh(job.cluster)
            self._alive[job.cluster] = sum(1 for n in nodes if n.status.alive)
        return self._alive[job.cluster]


def _count_outcomes(state: CliContext, job: Job) -> Counter[Outcome]:
    """Return how many of the job's tasks have each outcome."""
    from sparkles_core.models import TaskStatus

    counts = state.client.store.count_tasks(job.id)
    outcomes: Counter[Outcome] = Counter()
    for task_status, count in counts.items():
        if task_status is not TaskStatus.COMPLETE:
            outcomes[Outcome(task_status.value)] += count
    if counts.get(TaskStatus.COMPLETE):
        # TODO: a store query counting complete tasks by exit code would
        # avoid loading every complete record of a large job here.
        complete = state.client.tasks(job.id, [TaskStatus.COMPLETE])
        outcomes.update(outcome_of(task) for task in complete)
    return outcomes


def _status_row(job: Job, outcomes: Counter[Outcome], nodes: int) -> list[str]:
    counts = [str(outcomes[outcome]) for outcome in Outcome]
    total = sum(outcomes.values())
    return [job.id, _job_state(job, outcomes), str(total), *counts, str(nodes)]


def _job_state(job: Job, outcomes: Counter[Outcome]) -> str:
    """Return one word for where the job is, from its tasks' outcomes."""
    from sparkles_core.models import JobStatus

    if job.status is JobStatus.KILLED:
        return "killed"
    if outcomes[Outcome.CLAIMED]:
        return "running"
    if outcomes[Outcome.PENDING]:
        return "pending"
    if any(outcomes[o] for o in (Outcome.NONZERO, Outcome.FAILED, Outcome.KILLED)):
        return "failed"
    return "complete"


def _print_problems(state: CliContext, job: Job, tasks: Sequence[Task]) -> None:
    """Print the job's failed tasks and non-zero exits, one row each."""
    problems = [task for task in tasks if outcome_of(task).problem]
    if not problems:
        state.say(f"Job {job.id}: no failed tasks.")
        return
    columns = [
        Column("task"),
        Column("outcome", style=status_style),
        Column("exit", style=exit_style),
        Column("command"),
        Column("reason"),
    ]
    rows = [
        [
            task.id,
            outcome_of(task).value,
            describe_exit(task),
            task.spec.shell_command,
            task.failure_reason or "",
        ]
        for task in problems
    ]
    title = f"Job {job.id}: {plural(len(rows), 'failed task')}"
    print_table(state.console, columns, rows, title=title)


@click.command()
@click.argument("job_id", metavar="JOB")
@click.option(
    "--all", "all_tasks", is_flag=True, help="Show every task, not only failures."
)
@click.option(
    "--tail",
    type=click.IntRange(min=0),
    metavar="N",
    default=20,
    show_default=True,
    help="Lines of each log to show; 0 shows whole logs.",
)
@pass_context
def logs(state: CliContext, job_id: str, all_tasks: bool, tail: int) -> None:
    """Show a job's failed tasks and non-zero exits, with their logs.

    For each task: its command, parameters, exit code, signal or failure
    reason, its history, and the end of its log. JOB may be LAST.

    Example: sparkles logs LAST --tail 50
    """
    job = state.job(job_id)
    tasks = state.client.tasks(job.id)
    chosen = tasks if all_tasks else [t for t in tasks if outcome_of(t).problem]
    if not chosen:
        state.say(f"Job {job.id}: no failed tasks; use --all to see every task.")
        return
    for task in chosen:
        _print_task(state, task)
        _print_log(state, state.client.storage, task, tail)


def _print_task(state: CliContext, task: Task) -> None:
    """Print what the task ran, how it ended, and its history."""
    ending = describe_exit(task)
    headline = f"Task {task.id}: {outcome_of(task).value}"
    if ending:
        headline += f" (exit {ending})" if task.signal is None else f" ({ending})"
    state.say(headline, style="bold")
    state.say(f"  command:    {task.spec.shell_command}")
    params = " ".join(f"{k}={v}" for k, v in task.spec.parameters.items())
    state.say(f"  parameters: {params or '(none)'}")
    if task.failure_reason:
        state.say(f"  reason:     {task.failure_reason}")
    state.say("  history:")
    for entry in task.history:
        who = f" by {entry.owner}" if entry.owner else ""
        why = f": {entry.reason}" if entry.reason else ""
        state.say(f"    {format_time(entry.time)}  {entry.status.value}{who}{why}")


def _print_log(
    state: CliContext, storage: ObjectStorage, task: Task, tail: int
) -> None:
    """Print the last ``tail`` lines of the task's log (all if 0)."""
    from sparkles_cas.errors import StorageError

    if task.log_key is None:
        state.say("  log: none (the command never started)")
        return
    try:
        lines = _read_tail(storage, task.log_key, tail)
    except StorageError as exc:
        logger.debug("Task %s: log read failed", task.id, exc_info=True)
        state.warn(f"Task {task.id}: could not read its log: {exc}")
        return
    if lines is None:
        # Workers upload no log for a command that printed nothing.
        state.say("  log: empty")
        return
    shown = "whole log" if tail == 0 else f"last {plural(tail, 'line')}"
    state.say(f"  log ({shown} of {storage.url_of(task.log_key)}):")
    if lines:
        write_text(state.console, "\n".join(f"    {line}" for line in lines))


def _read_tail(storage: ObjectStorage, key: str, lines: int) -> list[str] | None:
    """Return the last ``lines`` lines of an object (all if 0), or None."""
    size = storage.size(key)
    if size is None:
        return None
    offset = 0 if lines == 0 else max(0, size - TAIL_BYTES)
    text = storage.get_bytes(key, offset).decode("utf-8", errors="replace")
    found = text.splitlines()
    if offset:
        found = found[1:]  # the first line was cut by the offset
    return found[-lines:] if lines else found
