"""``sparkles summarize``: where a job's time and memory went.

The figures come from the task records alone (times and resource usage
that the worker reported), so summarizing a job of many tasks reads no
object from storage.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from sparkles_core.cli.context import CliContext, pass_context
from sparkles_core.cli.tables import (
    Column,
    describe_exit,
    exit_style,
    format_bytes,
    format_duration,
    plural,
    print_table,
)

if TYPE_CHECKING:
    from sparkles_core.models import HistoryEntry, Job, Task

__all__ = ["Spread", "print_spreads", "summarize", "summarize_job_metrics"]

# How many of the longest-running tasks the summary names.
SLOWEST = 5

# A shell's exit status for a command killed by signal N is this plus N.
_SIGNAL_BASE = 128

Formatter = Callable[[float], str]


@dataclass(frozen=True)
class Spread:
    """The 5th percentile, median, 95th percentile and maximum of numbers."""

    count: int
    p5: float
    median: float
    p95: float
    max: float

    @classmethod
    def of(cls, values: Iterable[float]) -> Spread | None:
        """Return the spread of ``values``, or None if there are none."""
        ordered = sorted(values)
        if not ordered:
            return None
        return cls(
            count=len(ordered),
            p5=_quantile(ordered, 0.05),
            median=_quantile(ordered, 0.5),
            p95=_quantile(ordered, 0.95),
            max=ordered[-1],
        )


def _quantile(ordered: Sequence[float], q: float) -> float:
    """Return the ``q`` quantile, interpolating between the nearest values."""
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


@dataclass(frozen=True)
class Metric:
    """A named figure taken from each task, and how to show it."""

    name: str
    values: list[float]
    show: Formatter


def print_spreads(state: CliContext, metrics: Sequence[Metric], title: str) -> None:
    """Print one row per metric: how many tasks, p5, median, p95 and max."""
    columns = [
        Column("metric"),
        Column("tasks", numeric=True),
        *(Column(name, numeric=True) for name in ("p5", "median", "p95", "max")),
    ]
    rows = []
    for metric in metrics:
        spread = Spread.of(metric.values)
        if spread is None:
            rows.append([metric.name, "0", "", "", "", ""])
            continue
        figures = (spread.p5, spread.median, spread.p95, spread.max)
        rows.append(
            [metric.name, str(spread.count), *(metric.show(v) for v in figures)]
        )
    print_table(state.console, columns, rows, title=title)


def claim_counts(tasks: Sequence[Task]) -> Metric:
    """Return how many times each task was claimed, resets included."""
    claims = [float(_claims(task.history)) for task in tasks]
    return Metric("claims per task", claims, lambda v: f"{v:g}")


def _claims(history: Sequence[HistoryEntry]) -> int:
    from sparkles_core.models import TaskStatus

    return sum(1 for entry in history if entry.status is TaskStatus.CLAIMED)


def run_times(tasks: Sequence[Task]) -> Metric:
    """Return how long each command ran."""
    values = [
        task.finished - task.started
        for task in tasks
        if task.started is not None and task.finished is not None
    ]
    return Metric("run time", values, format_duration)


def peak_memory(tasks: Sequence[Task]) -> Metric:
    """Return the peak resident memory of each command."""
    values = [float(task.usage.max_rss_bytes) for task in tasks if task.usage]
    return Metric("peak memory", values, format_bytes)


def _queue_waits(job: Job, tasks: Sequence[Task]) -> Metric:
    values = [
        task.started - job.submit_time for task in tasks if task.started is not None
    ]
    return Metric("queue wait", values, format_duration)


def _cpu_times(tasks: Sequence[Task]) -> Metric:
    values = [
        task.usage.user_cpu_s + task.usage.system_cpu_s for task in tasks if task.usage
    ]
    return Metric("CPU time", values, format_duration)


def _print_slowest(state: CliContext, tasks: Sequence[Task]) -> None:
    """Print the tasks that ran longest, longest first."""
    timed = [t for t in tasks if t.started is not None and t.finished is not None]
    timed.sort(key=lambda t: (t.finished or 0.0) - (t.started or 0.0), reverse=True)
    columns = [
        Column("task"),
        Column("run time", numeric=True),
        Column("CPU time", numeric=True),
        Column("peak memory", numeric=True),
        Column("exit", style=exit_style),
        Column("parameters"),
    ]
    rows = [_slow_row(task) for task in timed[:SLOWEST]]
    print_table(
        state.console, columns, rows, title=f"Slowest {plural(len(rows), 'task')}"
    )


def _slow_row(task: Task) -> list[str]:
    usage = task.usage
    cpu = usage.user_cpu_s + usage.system_cpu_s if usage else None
    return [
        task.id,
        format_duration((task.finished or 0.0) - (task.started or 0.0)),
        format_duration(cpu),
        format_bytes(usage.max_rss_bytes if usage else None),
        describe_exit(task),
        _params(task),
    ]


@click.command()
@click.argument("job_id", metavar="JOB")
@click.option(
    "-i",
    "--incomplete",
    is_flag=True,
    help="Summarize the tasks running now instead: how long they waited "
    "and how long they have been running.",
)
@click.option(
    "-e",
    "--exitcode",
    type=int,
    default=None,
    metavar="CODE",
    help="Only the tasks whose command exited with CODE. A CODE over 128 also "
    "matches a command killed by signal CODE-128, as a shell reports it "
    "(137: SIGKILL).",
)
@pass_context
def summarize(
    state: CliContext, job_id: str, incomplete: bool, exitcode: int | None
) -> None:
    """Summarize a job's queue wait, run time, CPU time and peak memory.

    Each figure is given as p5, median, p95 and max over the tasks that ran,
    followed by the five tasks that ran longest. JOB may be LAST.

    \b
    Examples:
      sparkles summarize LAST
      sparkles summarize LAST --exitcode 137
      sparkles summarize LAST --incomplete
    """
    if incomplete and exitcode is not None:
        raise click.UsageError("Give --incomplete or --exitcode, not both.")
    job = state.job(job_id)
    if incomplete:
        _summarize_running(state, job)
        return
    tasks = [
        task
        for task in state.client.tasks(job.id)
        if task.started is not None and (exitcode is None or _exited(task, exitcode))
    ]
    if not tasks:
        which = "has run yet" if exitcode is None else f"exited with {exitcode}"
        state.say(f"No task of job {job.id} {which}.")
        return
    metrics = [
        _queue_waits(job, tasks),
        run_times(tasks),
        _cpu_times(tasks),
        peak_memory(tasks),
    ]
    title = f"Job {job.id}: {plural(len(tasks), 'task')} ran"
    print_spreads(state, metrics, title=title)
    _print_slowest(state, tasks)


def _exited(task: Task, code: int) -> bool:
    """Return True if the task's command ended with ``code``, as a shell says.

    A shell reports a command killed by signal N as 128 + N; the store keeps
    the signal apart (with no exit code), so 137 finds SIGKILL's victims.
    """
    if task.exit_code is not None:
        return task.exit_code == code
    return code > _SIGNAL_BASE and task.signal == code - _SIGNAL_BASE


def _summarize_running(state: CliContext, job: Job) -> None:
    """Print how long the running tasks waited and have been running."""
    from sparkles_core.models import TaskStatus

    now = time.time()
    claimed = state.client.tasks(job.id, [TaskStatus.CLAIMED])
    running = [(task, at) for task in claimed if (at := _claimed_at(task))]
    if not running:
        state.say(f"Job {job.id}: no task is running.")
        return
    metrics = [
        Metric(
            "queue wait", [at - job.submit_time for _, at in running], format_duration
        ),
        Metric("running for", [now - at for _, at in running], format_duration),
    ]
    title = f"Job {job.id}: {plural(len(running), 'task')} running"
    print_spreads(state, metrics, title=title)
    _print_longest_running(state, running, now)


def _print_longest_running(
    state: CliContext, running: Sequence[tuple[Task, float]], now: float
) -> None:
    """Print the tasks claimed longest ago, with the node running each."""
    columns = [
        Column("task"),
        Column("running for", numeric=True),
        Column("node"),
        Column("parameters"),
    ]
    longest = sorted(running, key=lambda pair: pair[1])[:SLOWEST]
    rows = [
        [task.id, format_duration(now - at), task.owner or "", _params(task)]
        for task, at in longest
    ]
    title = f"Longest running {plural(len(rows), 'task')}"
    print_table(state.console, columns, rows, title=title)


def _claimed_at(task: Task) -> float | None:
    """Return when the task's current attempt was claimed."""
    from sparkles_core.models import TaskStatus

    claims = [
        entry.time for entry in task.history if entry.status is TaskStatus.CLAIMED
    ]
    return claims[-1] if claims else None


def _params(task: Task) -> str:
    return " ".join(f"{k}={v}" for k, v in task.spec.parameters.items())


# The name Sparklespray users know; hidden so ``--help`` lists one command.
summarize_job_metrics = click.Command(
    "summarize-job-metrics",
    callback=summarize.callback,
    params=summarize.params,
    help=summarize.help,
    hidden=True,
)
