"""Keep a claimed task's lease alive and its command's log visible.

One background thread per worker looks after the task the worker holds:

- from the claim until the task is completed, failed or handed back, it
  renews the lease every third of the lease's length, so a long download
  before the command or a long upload after it does not lose the task;
- while the command runs, it also uploads the command's growing log every
  few seconds.

If the store says the lease is gone (the task was killed, or another worker
took it over after a stall), the task is marked lost and a running command
is stopped: its result would be refused anyway. The thread lives as long as
the worker, so a short task pays for no thread start.
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

__all__ = ["LEASE_LOST", "Heartbeat", "Held", "LogStream"]

logger = logging.getLogger(__name__)

LEASE_LOST = "lease lost: the task was killed or taken over"


@dataclass
class LogStream:
    """The command being run and where its log goes."""

    running: Running
    log_path: Path
    log_key: str
    size: int = 0


@dataclass
class Held:
    """The claimed task whose lease the heartbeat keeps alive."""

    task_id: str
    next_renew: float
    lost: bool = False
    stream: LogStream | None = None


class Heartbeat(threading.Thread):
    """Renew the held task's lease and stream its command's log."""

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
        self._held: Held | None = None
        self._closed = threading.Event()

    def hold(self, task_id: str) -> Held:
        """Start renewing the lease of a task that has just been claimed."""
        held = Held(task_id, time.monotonic() + self._lease_s / 3)
        with self._lock:
            self._held = held
        return held

    def release(self) -> None:
        """Stop renewing: the task is about to be completed, failed or freed.

        A renewal in progress finishes first, so none races the final write.
        """
        with self._lock:
            self._held = None

    def watch(self, running: Running, log_path: Path, log_key: str) -> None:
        """Stream the log of the held task's command, which has just started."""
        with self._lock:
            held = self._held
            if held is not None:
                held.stream = LogStream(running, log_path, log_key)
        if held is not None and held.lost:
            running.stop(LEASE_LOST)

    def unwatch(self) -> None:
        """Stop streaming the command's log; upload it one last time."""
        with self._lock:
            held = self._held
            stream = None if held is None else held.stream
            if held is not None:
                held.stream = None
        if held is not None and stream is not None:
            self._upload_log(held.task_id, stream)

    def close(self) -> None:
        """End the thread."""
        self._closed.set()
        if self.is_alive():
            self.join()

    def run(self) -> None:
        """Loop until closed."""
        while not self._closed.wait(self._tick):
            with self._lock:
                held = self._held
                if held is None:
                    continue
                if held.stream is not None:
                    self._upload_log(held.task_id, held.stream)
                if not held.lost and time.monotonic() >= held.next_renew:
                    held.next_renew = time.monotonic() + self._lease_s / 3
                    self._renew(held)

    def _renew(self, held: Held) -> None:
        try:
            kept = self._store.renew(held.task_id, self._owner, self._lease_s)
        except StoreError as exc:
            logger.warning("Task %s: lease renewal failed: %s", held.task_id, exc)
            return
        if kept:
            return
        logger.warning("Task %s: %s", held.task_id, LEASE_LOST)
        held.lost = True
        if held.stream is not None:
            held.stream.running.stop(LEASE_LOST)

    def _upload_log(self, task_id: str, stream: LogStream) -> None:
        """Upload the log if it grew; an empty log is not uploaded at all."""
        try:
            size = stream.log_path.stat().st_size
            if size != stream.size:
                self._storage.put_file(stream.log_key, stream.log_path)
                stream.size = size
        except (OSError, StorageError) as exc:
            logger.warning("Task %s: log upload failed: %s", task_id, exc)
