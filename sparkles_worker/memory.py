"""Measure the peak memory of a running command's own processes.

The kernel's figure (``ru_maxrss`` from ``wait4``) cannot be used: the
command's first process is forked from the worker, and Linux keeps the
high-water mark of the memory it had before ``exec``, so even ``true``
would report the worker's own size.

Instead a :class:`PeakMemory` thread looks at the command's processes (its
first process and every descendant) while they run:

- as it starts, it reads the first process alone (cheap, so a command that
  ends at once still gets a figure);
- then, at intervals that grow from :data:`FIRST_INTERVAL_S` to
  :data:`SAMPLE_INTERVAL_S`, it adds up the resident memory of all of them
  and reads each one's own high-water mark (``VmHWM`` in
  ``/proc/PID/status``), which catches a peak that came and went between
  two samples.

The peak is the largest of those figures. Its resolution is the sampling
interval (0.05 s at first, 0.5 s after the first second): a process that
lives less than that may be missed, memory that several short-lived
processes hold at once between two samples is not added up, and a command
that is over within a millisecond or so reports 0. For a command that runs
in a container, the processes seen are the container client's.
"""

from __future__ import annotations

import contextlib
import logging
import threading

import psutil

__all__ = ["FIRST_INTERVAL_S", "SAMPLE_INTERVAL_S", "PeakMemory", "high_water_mark"]

logger = logging.getLogger(__name__)

# Often enough to catch a step that holds its memory for a second, rarely
# enough that the scan of the process table (a few ms) costs little.
SAMPLE_INTERVAL_S = 0.5
# Short commands are common; the first samples come sooner, and a command
# that ends before the first one costs no scan at all.
FIRST_INTERVAL_S = 0.05


class PeakMemory(threading.Thread):
    """Track the peak resident memory of one process and its descendants."""

    def __init__(self, pid: int) -> None:
        super().__init__(name=f"memory-{pid}", daemon=True)
        self._pid = pid
        self._stopped = threading.Event()
        self._peak = 0

    def start(self) -> None:
        """Take a first look at the process now, then sample in the background."""
        self._peak = high_water_mark(self._pid)
        super().start()

    def stop(self) -> int:
        """End sampling; return the peak in bytes."""
        self._stopped.set()
        if self.is_alive():
            self.join()
        logger.debug("Command pid %d: peak memory %d bytes", self._pid, self._peak)
        return self._peak

    def run(self) -> None:
        """Sample until stopped or the process is gone."""
        try:
            leader = psutil.Process(self._pid)
        except psutil.Error:
            return
        interval = FIRST_INTERVAL_S
        while not self._stopped.wait(interval):
            interval = min(interval * 2, SAMPLE_INTERVAL_S)
            try:
                family = [leader, *leader.children(recursive=True)]
            except psutil.Error:
                return  # the command has ended; its group is being reaped
            self._observe(family)

    def _observe(self, processes: list[psutil.Process]) -> None:
        total = 0
        for process in processes:
            with contextlib.suppress(psutil.Error):
                total += process.memory_info().rss
                self._peak = max(self._peak, high_water_mark(process.pid))
        self._peak = max(self._peak, total)


def high_water_mark(pid: int) -> int:
    """Return the process's own peak resident memory in bytes, or 0."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024  # the kernel writes kB
    except (OSError, ValueError, IndexError):
        pass
    return 0
