"""Run one task's command and measure it.

The command runs as ``/bin/sh -c`` in its own process group, with stdout and
stderr merged into the attempt's log file. Stopping it (timeout, lost lease,
SIGTERM) signals the whole group, so a pipeline or a background child does
not outlive the task. A command that runs elsewhere (in a container) passes
a signaller that forwards each stop signal to where it really runs.

CPU times come from the kernel (``wait4``); peak memory comes from a
:class:`~sparkles_worker.memory.PeakMemory` sampler that watches the
command's processes while they run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sparkles_core.models import ResourceUsage
from sparkles_worker.memory import PeakMemory

__all__ = ["Outcome", "Running", "Signaller", "spawn", "start"]

logger = logging.getLogger(__name__)

# How long a stopped command gets between SIGTERM and SIGKILL.
KILL_GRACE_S = 5.0

# Forwards a stop signal to where the command really runs.
Signaller = Callable[[signal.Signals], None]


@dataclass
class Outcome:
    """How the command ended."""

    exit_code: int | None
    signal: int | None
    started: float
    finished: float
    usage: ResourceUsage
    stop_reason: str | None = None
    timed_out: bool = False


@dataclass
class Running:
    """A started command that can be waited for or stopped."""

    proc: subprocess.Popen[bytes]
    started: float
    timeout: float | None
    signaller: Signaller | None = None
    memory: PeakMemory | None = None
    _stop_reason: str | None = None
    _timed_out: bool = False
    _kill_timer: threading.Timer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def stop(self, reason: str, *, timed_out: bool = False) -> bool:
        """Stop the command's process group (SIGTERM, then SIGKILL).

        Return False if it was already stopping or has ended.
        """
        with self._lock:
            if self._stop_reason is not None or self.proc.returncode is not None:
                return False
            self._stop_reason, self._timed_out = reason, timed_out
        logger.info("Command pid %d: stopping (%s)", self.proc.pid, reason)
        self._send(signal.SIGTERM)
        self._kill_timer = threading.Timer(KILL_GRACE_S, self._send, (signal.SIGKILL,))
        self._kill_timer.daemon = True
        self._kill_timer.start()
        return True

    def wait(self) -> Outcome:
        """Wait for the command, enforcing the timeout; return its outcome."""
        timer = None
        if self.timeout is not None:
            timer = threading.Timer(self.timeout, self._time_out)
            timer.daemon = True
            timer.start()
        try:
            # Wait without reaping first: while the leader is a zombie its pid
            # cannot be reused, so the sampler cannot measure a stranger.
            os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOWAIT)
            peak = 0 if self.memory is None else self.memory.stop()
            _, status, rusage = os.wait4(self.proc.pid, 0)
        finally:
            for pending in (timer, self._kill_timer):
                if pending is not None:
                    pending.cancel()
        # Anything the command left in its group goes with it. The group id
        # cannot be reused yet: its leader was only just reaped.
        _signal_group(self.proc.pid, signal.SIGKILL)
        if self._stop_reason is not None and self.signaller is not None:
            self.signaller(signal.SIGKILL)  # what ran elsewhere may outlive us
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        return self._outcome(status, rusage, peak)

    def _time_out(self) -> None:
        self.stop(f"timed out after {self.timeout:g} s", timed_out=True)

    def _send(self, signum: signal.Signals) -> None:
        _signal_group(self.proc.pid, signum)
        if self.signaller is not None:
            # A signaller may run a command; a signal handler must not wait.
            threading.Thread(target=self.signaller, args=(signum,), daemon=True).start()

    def _outcome(
        self, status: int, rusage: resource.struct_rusage, peak: int
    ) -> Outcome:
        code = None if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        # ru_maxrss is not used: it counts the worker's memory from before exec.
        usage = ResourceUsage(
            user_cpu_s=rusage.ru_utime,
            system_cpu_s=rusage.ru_stime,
            max_rss_bytes=peak,
        )
        return Outcome(
            code,
            signum,
            self.started,
            time.time(),
            usage,
            self._stop_reason,
            self._timed_out,
        )


def start(
    command: str,
    cwd: Path,
    log_path: Path,
    env: dict[str, str],
    timeout: float | None,
) -> Running:
    """Start ``command`` under ``/bin/sh -c`` with its output in ``log_path``."""
    return spawn(["/bin/sh", "-c", command], cwd, log_path, env, timeout)


def spawn(
    argv: list[str],
    cwd: Path,
    log_path: Path,
    env: dict[str, str],
    timeout: float | None,
    signaller: Signaller | None = None,
) -> Running:
    """Start ``argv`` in its own process group with its output in ``log_path``."""
    logger.debug("Running %r in %s", argv, cwd)
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            process_group=0,
        )
    memory = PeakMemory(proc.pid)
    memory.start()
    return Running(proc, time.time(), timeout, signaller, memory)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
