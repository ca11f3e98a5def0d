"""Run periodic checks until one of them says the job is over.

Each check's :meth:`Check.poll` does one round of work and returns how many
seconds until it wants to run again, or :data:`STOP` when the watched job is
finished. Checks run one at a time in the caller's thread, so they need no
locks; a slow check delays the others rather than racing them.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from typing import Protocol

__all__ = ["STOP", "Check", "Runner"]

logger = logging.getLogger(__name__)

STOP: float = -1.0


class Check(Protocol):
    """One periodic duty of a monitor."""

    name: str

    def poll(self, now: float) -> float:
        """Do one round; return seconds to the next round, or STOP."""
        ...

    def finish(self, error: BaseException | None) -> None:
        """Run once after the runner stops, however it stopped.

        ``error`` is the exception that stopped it (Ctrl-C, a store error),
        or None when a check said STOP or :meth:`Runner.stop` was called.
        After an error a check releases what it holds but asks the store
        nothing more: that could fail again, and would delay a Ctrl-C.
        """
        ...


class Runner:
    """A small scheduler of checks."""

    def __init__(self, checks: list[Check]) -> None:
        self._checks = checks
        self._wake = threading.Event()
        self._stopped = False

    def stop(self) -> None:
        """Ask the runner to return at its next step (thread-safe)."""
        self._stopped = True
        self._wake.set()

    def run(self) -> None:
        """Poll the checks until one returns STOP or :meth:`stop` is called."""
        order = itertools.count()
        queue = [(0.0, next(order), check) for check in self._checks]
        error: BaseException | None = None
        try:
            while queue and not self._stopped:
                due, _, check = heapq.heappop(queue)
                delay = due - time.monotonic()
                if delay > 0 and self._wake.wait(delay):
                    break
                interval = check.poll(time.time())
                if interval == STOP:
                    logger.debug("Monitor: %s says the job is over", check.name)
                    return
                heapq.heappush(queue, (time.monotonic() + interval, next(order), check))
        except BaseException as exc:
            error = exc
            raise
        finally:
            for check in self._checks:
                check.finish(error)
