"""What ``sparkles watch`` shows while jobs run.

A reporter receives the monitor's calls (progress, log data, messages) and
draws them: on a terminal, a live progress bar per job with the nodes
beneath and the log and failures scrolling above; elsewhere (a pipe, a
file, CI), plain lines, a job's progress line only when it changes. Tasks
that end without success are announced once each, as they are noticed.
"""

from __future__ import annotations

import abc
import codecs
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text

from sparkles_core.cli.tables import plural
from sparkles_core.models import Job, NodeReq, NodeStatus, Task, TaskStatus
from sparkles_core.monitor.finishes import FinishReader
from sparkles_core.store.base import Store

__all__ = [
    "FailureFeed",
    "LiveReporter",
    "PlainReporter",
    "Tally",
    "WatchReporter",
    "describe_failure",
    "describe_nodes",
    "make_reporter",
]

# Parameters shown beside a failed task are cut to this many characters.
_PARAMS_WIDTH = 60


@dataclass(frozen=True)
class Tally:
    """A job's task counts as the user thinks of them."""

    total: int
    done: int
    failed: int
    killed: int
    running: int
    pending: int

    @classmethod
    def of(cls, job: Job, counts: Mapping[TaskStatus, int], failed: int) -> Tally:
        """Return the tally of ``counts``; ``failed`` counts non-zero exits too."""
        finished = sum(
            counts.get(status, 0) for status in TaskStatus if status.finished
        )
        return cls(
            total=job.task_count,
            done=finished,
            failed=failed,
            killed=counts.get(TaskStatus.KILLED, 0),
            running=counts.get(TaskStatus.CLAIMED, 0),
            pending=counts.get(TaskStatus.PENDING, 0),
        )


def describe_nodes(nodes: Sequence[NodeReq], by_class: bool = True) -> str:
    """Return the nodes still starting or running (and failed), by class.

    Without ``by_class`` the classes are left out: this machine's worker
    processes are neither spot capacity nor billed, whatever the machine
    spec says.
    """
    shown = Counter(
        (node.node_class.value if by_class else "", node.status.value)
        for node in nodes
        if node.status is not NodeStatus.COMPLETE
    )
    if not shown:
        return "no nodes"
    parts = []
    for node_class in sorted({node_class for node_class, _ in shown}):
        states = sorted((s, n) for (c, s), n in shown.items() if c == node_class)
        counts = ", ".join(f"{n} {s}" for s, n in states)
        parts.append(f"{node_class} {counts}" if node_class else counts)
    return "; ".join(parts)


def describe_failure(task: Task) -> str:
    """Return one line saying which task failed and why."""
    if task.status is TaskStatus.FAILED:
        why = task.failure_reason or "no reason recorded"
    elif task.status is TaskStatus.KILLED:
        why = "killed before it finished"
    elif task.timed_out and task.spec.timeout is not None:
        why = f"timed out after {task.spec.timeout:g} s"
    elif task.signal is not None:
        why = f"killed by signal {task.signal}"
    else:
        why = f"exit code {task.exit_code}"
    line = f"Task {task.id} failed: {why}"
    if task.spec.parameters:
        params = " ".join(f"{k}={v}" for k, v in task.spec.parameters.items())
        if len(params) > _PARAMS_WIDTH:
            params = params[: _PARAMS_WIDTH - 3] + "..."
        line += f" ({params})"
    return line


class FailureFeed:
    """Find the watched jobs' tasks that ended without success, each one once.

    A scan reads, in one store call for every watched job, only the tasks
    that finished since the last scan (see
    :class:`~sparkles_core.monitor.finishes.FinishReader`).
    """

    # At most one scan a second however many jobs are watched: failure
    # lines need not be quicker, and a job of many short tasks changes its
    # counts on nearly every progress round.
    SCAN_INTERVAL_S = 1.0

    def __init__(self, store: Store, jobs: Sequence[Job]) -> None:
        self._finishes = FinishReader(store, [job.id for job in jobs])
        self._seen: set[str] = set()
        self._failed: Counter[str] = Counter()
        self._scanned: dict[str, int] = {}
        self._next_scan = 0.0

    def failures(self, job_id: str) -> int:
        """Return how many failed tasks of the job were found so far."""
        return self._failed[job_id]

    def poll(self, job_id: str, counts: Mapping[TaskStatus, int]) -> list[Task]:
        """Return the failed tasks not returned before, scanning when due.

        A scan is due when the job's finished tasks changed and a second has
        passed since the last; once the job has no unfinished task it runs
        regardless, so that the job's last progress line counts every failure.
        """
        finished = counts.get(TaskStatus.COMPLETE, 0) + counts.get(TaskStatus.FAILED, 0)
        unfinished = counts.get(TaskStatus.PENDING, 0) + counts.get(
            TaskStatus.CLAIMED, 0
        )
        now = time.monotonic()
        if finished == self._scanned.get(job_id, 0):
            return []
        if now < self._next_scan and unfinished:
            return []
        self._scanned[job_id], self._next_scan = finished, now + self.SCAN_INTERVAL_S
        return self.unseen(self._finishes.read())

    def unseen(self, tasks: Sequence[Task]) -> list[Task]:
        """Return the failed tasks among ``tasks`` not returned before."""
        new = [
            task
            for task in tasks
            if task.status in (TaskStatus.COMPLETE, TaskStatus.FAILED)
            and not task.succeeded
            and task.id not in self._seen
        ]
        self._seen.update(task.id for task in new)
        self._failed.update(task.job_id for task in new)
        return new


class WatchReporter(abc.ABC):
    """Show watched jobs: progress, nodes, one task's log, failures."""

    def __init__(
        self,
        console: Console,
        store: Store,
        jobs: Sequence[Job],
        node_classes: bool = True,
    ) -> None:
        self.console = console
        self._node_classes = node_classes
        self._jobs = {job.id: job for job in jobs}
        self._failures = FailureFeed(store, jobs)
        self._log_task: str | None = None
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""

    def __enter__(self) -> WatchReporter:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self._flush_log()

    def progress(
        self, job: Job, counts: Mapping[TaskStatus, int], nodes: Sequence[NodeReq]
    ) -> None:
        """Announce new failures, then show the counts and the nodes."""
        for task in self._failures.poll(job.id, counts):
            self._print(describe_failure(task), "red")
        tally = Tally.of(self._jobs[job.id], counts, self._failures.failures(job.id))
        self._show(job.id, tally, describe_nodes(nodes, self._node_classes))

    def log(self, task_id: str, data: bytes) -> None:
        """Show the complete lines of the followed task's output."""
        if task_id != self._log_task:
            self._flush_log()
            self._log_task = task_id
        text = self._partial + self._decoder.decode(data)
        *lines, self._partial = text.split("\n")
        for line in lines:
            self._print(f"{task_id} | {line}", "dim")

    def message(self, text: str) -> None:
        """Show a line about the job."""
        self._print(text, None)

    def conclude(self, job: Job, tasks: Sequence[Task]) -> None:
        """Announce the job's failures not yet shown, then one summary line."""
        self._flush_log()
        for task in self._failures.unseen(tasks):
            self._print(describe_failure(task), "red")
        succeeded = sum(1 for task in tasks if task.succeeded)
        self._print_outcome(f"Job {job.id}", succeeded, len(tasks))

    def conclude_all(self, succeeded: int, total: int) -> None:
        """Show one line for every watched job together."""
        self._print_outcome(plural(len(self._jobs), "job"), succeeded, total)

    def _print_outcome(self, what: str, succeeded: int, total: int) -> None:
        line = f"{what}: {succeeded} of {plural(total, 'task')} succeeded"
        failed = total - succeeded
        line += f", {failed} did not." if failed else "."
        self._print(line, "red" if failed else "green")

    def _flush_log(self) -> None:
        rest = self._partial + self._decoder.decode(b"", final=True)
        if rest and self._log_task is not None:
            self._print(f"{self._log_task} | {rest}", "dim")
        self._partial = ""

    @abc.abstractmethod
    def _show(self, job_id: str, tally: Tally, nodes: str) -> None:
        """Draw the job's counts and its nodes."""

    def _print(self, text: str, style: str | None) -> None:
        # The style goes on the Text, not the print call: a live display is
        # redrawn as part of each print and would take on the style too.
        self.console.print(Text(text, style=style or ""), soft_wrap=True)


class PlainReporter(WatchReporter):
    """Report in plain lines, for output that is not a terminal."""

    def __init__(
        self,
        console: Console,
        store: Store,
        jobs: Sequence[Job],
        node_classes: bool = True,
    ) -> None:
        super().__init__(console, store, jobs, node_classes)
        self._last: dict[str, str] = {}

    def _show(self, job_id: str, tally: Tally, nodes: str) -> None:
        line = (
            f"{job_id}: {tally.done}/{tally.total} done, "
            f"{tally.failed} failed, {tally.running} running, "
            f"{tally.pending} pending"
        )
        if tally.killed:
            line += f", {tally.killed} killed"
        line += f"; nodes: {nodes}"
        if line != self._last.get(job_id):
            self._last[job_id] = line
            self._print(line, None)


class LiveReporter(WatchReporter):
    """Report with a live progress bar per job, for a terminal."""

    def __init__(
        self,
        console: Console,
        store: Store,
        jobs: Sequence[Job],
        node_classes: bool = True,
    ) -> None:
        super().__init__(console, store, jobs, node_classes)
        self._bar = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("[red]{task.fields[failed]} failed"),
            TimeElapsedColumn(),
            console=console,
            auto_refresh=False,
        )
        self._bar_tasks: dict[str, TaskID] = {
            job.id: self._bar.add_task(job.id, total=job.task_count, failed=0)
            for job in jobs
        }
        self._below: dict[str, str] = {}
        self._live = Live(
            self._bar, console=console, auto_refresh=False, transient=False
        )

    def __enter__(self) -> WatchReporter:
        self._live.start()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        super().__exit__(kind, error, trace)
        self._live.stop()

    def _show(self, job_id: str, tally: Tally, nodes: str) -> None:
        bar_task = self._bar_tasks[job_id]
        self._bar.update(bar_task, completed=tally.done, failed=tally.failed)
        status = f"{tally.running} running, {tally.pending} pending"
        if tally.killed:
            status += f", {tally.killed} killed"
        self._below[job_id] = f"{status}; nodes: {nodes}"
        if len(self._jobs) == 1:
            below = self._below[job_id]
        else:
            below = "\n".join(f"{job}: {line}" for job, line in self._below.items())
        self._live.update(Group(self._bar, Text(below, style="dim")), refresh=True)


def make_reporter(
    console: Console, store: Store, jobs: Sequence[Job], node_classes: bool = True
) -> WatchReporter:
    """Return the reporter that suits where the console writes."""
    if console.is_terminal:
        return LiveReporter(console, store, jobs, node_classes)
    return PlainReporter(console, store, jobs, node_classes)
