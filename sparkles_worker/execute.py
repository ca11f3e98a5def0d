"""Run one task's command and measure it.

The command runs as ``/bin/sh -c`` in its own process group, with stdout and
stderr merged into the attempt's log file. Stopping it (timeout, lost lease,
SIGTERM) signals the whole group, so a pipeline or a background child does
not outlive the task. A command that runs elsewhere (in a container) passes
a signaller that forwards each stop signal to where it really runs.
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


@dataclass
class Running:
    """A started command that can be waited for or stopped."""

    proc: subprocess.Popen[bytes]
    started: float
    timeout: float | None
    signaller: Signaller | None = None
    _stop_reason: str | None = None
    _kill_timer: threading.Timer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def stop(self, reason: str) -> None:
        """Stop the command's process group (SIGTERM, then SIGKILL)."""
        with self._lock:
            if self._stop_reason is not None or self.proc.returncode is not None:
                return
            self._stop_reason = reason
        logger.info("Command pid %d: stopping (%s)", self.proc.pid, reason)
        self._send(signal.SIGTERM)
        self._kill_timer = threading.Timer(KILL_GRACE_S, self._send, (signal.SIGKILL,))
        self._kill_timer.daemon = True
        self._kill_timer.start()

    def wait(self) -> Outcome:
        """Wait for the command, enforcing the timeout; return its outcome."""
        timer = None
        if self.timeout is not None:
            timer = threading.Timer(
                self.timeout, self.stop, (f"timed out after {self.timeout:g} s",)
            )
            timer.daemon = True
            timer.start()
        try:
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
        return self._outcome(status, rusage)

    def _send(self, signum: signal.Signals) -> None:
        _signal_group(self.proc.pid, signum)
        if self.signaller is not None:
            # A signaller may run a command; a signal handler must not wait.
            threading.Thread(target=self.signaller, args=(signum,), daemon=True).start()

    def _outcome(self, status: int, rusage: resource.struct_rusage) -> Outcome:
        code = None if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        signum = os.WTERMSIG(status) if os.WIFSIGNALED(status) else None
        usage = ResourceUsage(
            user_cpu_s=rusage.ru_utime,
            system_cpu_s=rusage.ru_stime,
            max_rss_bytes=rusage.ru_maxrss * 1024,  # Linux reports KiB
        )
        return Outcome(
            code, signum, self.started, time.time(), usage, self._stop_reason
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
    return Running(proc, time.time(), timeout, signaller)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
