"""Keep a running task's lease alive and its log visible.

One background thread per worker renews the lease of the task being run
every third of the lease's length and uploads its growing log every few
seconds. If the store says the lease is gone (the task was killed, or
another worker took it over after a stall), the command is stopped: its
result would be refused anyway. The thread lives as long as the worker, so
a short task pays for no thread start.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sparkles_cas.errors import StorageError
from sparkles_cas.storage import ObjectStorage
from sparkles_core.errors import StoreError
from sparkles_core.store.base import Store
from sparkles_worker.execute import Running

__all__ = ["LEASE_LOST", "Heartbeat", "Watched"]

logger = logging.getLogger(__name__)

LEASE_LOST = "lease lost: the task was killed or taken over"


@dataclass
class Watched:
    """The task the heartbeat is looking after."""

    task_id: str
    running: Running
    log_path: Path
    log_key: str
    log_size: int = 0
    lost: bool = False
    next_renew: float = 0.0


class Heartbeat(threading.Thread):
    """Renew the current task's lease and stream its log."""

    def __init__(
        self,
        store: Store,
        storage: ObjectStorage,
        owner: str,
        lease_s: float,
        log_interval_s: float,
    ) -> None:
        super().__init__(name="heartbeat", daemon=True)
        self._store, self._storage = store, storage
        self._owner, self._lease_s = owner, lease_s
        self._tick = min(lease_s / 3, log_interval_s)
        self._lock = threading.Lock()
        self._watched: Watched | None = None
        self._closed = threading.Event()

    def watch(self, watched: Watched) -> None:
        """Start looking after a task whose command has just started."""
        watched.next_renew = time.monotonic() + self._lease_s / 3
        with self._lock:
            self._watched = watched

    def unwatch(self) -> Watched | None:
        """Stop looking after the task; upload its log one last time."""
        with self._lock:
            watched, self._watched = self._watched, None
        if watched is not None:
            self._upload_log(watched)
        return watched

    def close(self) -> None:
        """End the thread."""
        self._closed.set()
        if self.is_alive():
            self.join()

    def run(self) -> None:
        """Loop until closed."""
        while not self._closed.wait(self._tick):
            with self._lock:
                watched = self._watched
                if watched is None:
                    continue
                self._upload_log(watched)
                if time.monotonic() >= watched.next_renew:
                    watched.next_renew = time.monotonic() + self._lease_s / 3
                    self._renew(watched)

    def _renew(self, watched: Watched) -> None:
        try:
            held = self._store.renew(watched.task_id, self._owner, self._lease_s)
        except StoreError as exc:
            logger.warning("Task %s: lease renewal failed: %s", watched.task_id, exc)
            return
        if not held:
            logger.warning("Task %s: %s", watched.task_id, LEASE_LOST)
            watched.lost = True
            watched.running.stop(LEASE_LOST)

    def _upload_log(self, watched: Watched) -> None:
        """Upload the log if it grew; an empty log is not uploaded at all."""
        try:
            size = watched.log_path.stat().st_size
            if size != watched.log_size:
                self._storage.put_file(watched.log_key, watched.log_path)
                watched.log_size = size
        except (OSError, StorageError) as exc:
            logger.warning("Task %s: log upload failed: %s", watched.task_id, exc)
