"""What ``sparkles-run`` shows: the task's output, status lines, log records.

The task's own output goes to stdout, byte for byte; everything Sparkles has
to say goes to stderr through one rich console, log records included, so
the two never mix.
"""

from __future__ import annotations

import contextlib
import logging
import sys
from collections.abc import Mapping, Sequence

from rich.console import Console

from sparkles_core.models import Job, NodeReq, TaskStatus

__all__ = ["ConsoleLogHandler", "RunReporter", "say"]


def say(console: Console, text: str, style: str) -> None:
    """Print one line on the console; a closed terminal is not an error."""
    with contextlib.suppress(OSError):
        console.print(text, style=style, markup=False, highlight=False, soft_wrap=True)


class ConsoleLogHandler(logging.Handler):
    """Show log records on the console as ``sparkles: warning: ...`` lines."""

    def __init__(self, console: Console, debug: bool, quiet: bool) -> None:
        level = logging.ERROR if quiet else logging.WARNING
        super().__init__(logging.DEBUG if debug else level)
        self._console, self._debug = console, debug

    def emit(self, record: logging.LogRecord) -> None:
        """Print the record, with its logger and traceback under --debug."""
        try:
            where = f"{record.name}: " if self._debug else ""
            text = f"sparkles: {record.levelname.lower()}: {where}{record.getMessage()}"
            if self._debug and record.exc_info:
                text += "\n" + logging.Formatter().formatException(record.exc_info)
            style = "yellow" if record.levelno >= logging.WARNING else "dim"
            say(self._console, text, style)
        except Exception:
            self.handleError(record)


class RunReporter:
    """Stream the task's output to stdout and status lines to stderr."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self._console, self._quiet = console, quiet
        self._last = ""

    def progress(
        self, job: Job, counts: Mapping[TaskStatus, int], nodes: Sequence[NodeReq]
    ) -> None:
        """Say when the task starts waiting and when it starts running."""
        alive = sum(1 for node in nodes if node.status.alive)
        if counts.get(TaskStatus.CLAIMED):
            line = "running"
        elif counts.get(TaskStatus.PENDING):
            line = f"waiting for a worker ({alive} starting)" if alive else "queued"
        else:
            return
        if line != self._last:
            self._last = line
            self.message(f"{job.id}: {line}")

    def log(self, task_id: str, data: bytes) -> None:
        """Write the task's output as it arrives."""
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    def message(self, text: str) -> None:
        """Show a status line on stderr, unless quiet."""
        if not self._quiet:
            say(self._console, f"sparkles: {text}", "dim")

    def outcome(self, text: str) -> None:
        """Show how the run ended (even when quiet)."""
        say(self._console, f"sparkles: {text}", "bold")

    def error(self, text: str) -> None:
        """Show why the run failed."""
        say(self._console, f"sparkles-run: error: {text}", "red")
