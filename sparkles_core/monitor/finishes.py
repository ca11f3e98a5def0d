"""Read the tasks of some jobs that finished since the last read.

A monitor that reacts to finished tasks (the lifecycle hooks, the failure
lines of ``sparkles watch``) must not re-read every finished task of a
large job each round. A :class:`FinishReader` asks the store only for the
tasks that finished from a moment on, a window that moves forward with
the finishes it sees, and returns each finish once.

A finish is one task reaching complete, failed or killed; the task id and
the length of its history name it, so a task reset and run again finishes
anew.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from sparkles_core.models import Task
from sparkles_core.store import transitions
from sparkles_core.store.base import Store

__all__ = ["FinishReader"]


class FinishReader:
    """Return the finishes of some jobs not returned before, oldest first."""

    # Finish times come from the clocks of the processes that wrote them
    # (workers on other machines too), and a commit can land a moment after
    # its time was taken. Each read reaches this far behind the latest
    # finish seen and skips what it returned before: far more than NTP-synced
    # clocks drift or a commit takes, and still a small window to re-read.
    OVERLAP_S = 10.0

    def __init__(self, store: Store, job_ids: Sequence[str]) -> None:
        self._store, self._job_ids = store, list(job_ids)
        self._since = 0.0
        # Finishes returned and still inside the window, with their times.
        self._seen: dict[tuple[str, int], float] = {}

    def read(self) -> list[Task]:
        """Return the finishes since the last read; the first read returns all."""
        now = time.time()
        new = []
        for task in self._store.finished_since(self._job_ids, self._since):
            key = (task.id, len(task.history))
            if key not in self._seen:
                self._seen[key] = transitions.ended_at(task) or 0.0
                new.append(task)
        # One writer whose clock runs fast (a laptop a minute ahead running
        # 'sparkles kill') would carry the window past every finish that the
        # right clocks stamp later, and those would never be read. So the
        # window reaches back from this reader's clock at the latest.
        latest = min(max(self._seen.values(), default=0.0), now)
        self._since = max(self._since, latest - self.OVERLAP_S)
        self._seen = {k: at for k, at in self._seen.items() if at >= self._since}
        return new
