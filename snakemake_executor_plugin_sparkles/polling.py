"""Ride out a store that cannot be read for a while during status polls.

A status poll that fails loses nothing: the jobs go on running on their
nodes, and the next poll that works finds every task that finished in the
meantime. So a failed poll is a warning and the jobs are polled again; only
an outage that lasts :data:`OUTAGE_LIMIT_S` fails them, with the last error.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

__all__ = ["OUTAGE_LIMIT_S", "StatusPolls"]

logger = logging.getLogger(__name__)

# Network drops, a laptop waking from sleep and cloud API hiccups pass in
# seconds to a few minutes. Ten minutes rides those out; a store still out
# of reach after that needs a person, and a failure that says why serves
# them better than a workflow that looks stuck while its nodes bill.
OUTAGE_LIMIT_S = 600.0

# One warning a minute says the outage goes on without flooding the log at
# the local poll rate of five a second.
_WARN_EVERY_S = 60.0


class StatusPolls:
    """Tell, poll after poll, whether store errors are still worth waiting out."""

    def __init__(
        self,
        limit_s: float = OUTAGE_LIMIT_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._limit_s, self._clock = limit_s, clock
        self._since: float | None = None
        self._warned = -math.inf

    @property
    def limit_min(self) -> float:
        """Return the longest outage waited out, in minutes."""
        return self._limit_s / 60

    def succeeded(self) -> None:
        """Record a poll that read the store; any outage is over."""
        if self._since is not None:
            logger.warning(
                "Status: tasks readable again after %.0f s", self._clock() - self._since
            )
        self._since, self._warned = None, -math.inf

    def failed(self, error: Exception) -> bool:
        """Record a failed poll; return True when it is time to fail the jobs."""
        now = self._clock()
        if self._since is None:
            self._since = now
        if now - self._since >= self._limit_s:
            self._since, self._warned = None, -math.inf
            return True
        if now - self._warned >= _WARN_EVERY_S:
            self._warned = now
            logger.warning(
                "Status: could not read the tasks; the jobs run on and are polled "
                "again, for up to %g min: %s",
                self.limit_min,
                error,
            )
        return False
