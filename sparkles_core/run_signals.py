"""Stop signals for ``sparkles-run``: raised as one exception, or held.

Ctrl-C, SIGTERM and SIGHUP (the terminal closing) all become
:class:`Interrupted`, so one path handles every way of being stopped. While
a critical step runs (storing the job, stopping workers) a signal is held
and raised after it, so it cannot fall between the store's commit and
knowing the job, nor cut a clean-up short.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from types import FrameType

__all__ = ["STOP_SIGNALS", "Interrupted", "SignalGuard"]

# The signals that mean "stop": Ctrl-C, a polite kill, the terminal closing.
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


class Interrupted(BaseException):
    """A stop signal reached ``sparkles-run``.

    A BaseException, as KeyboardInterrupt is, so that no ``except Exception``
    on the way swallows it.
    """

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


class SignalGuard:
    """Raise :class:`Interrupted` on a stop signal, or hold it for a while."""

    def __init__(self) -> None:
        self._holding = False
        self._held: int | None = None
        self._note: str | None = None

    def install(self) -> None:
        """Handle the stop signals, except those this process was told to ignore.

        ``nohup`` and background jobs of a script ignore SIGHUP or SIGINT on
        purpose; that choice is kept.
        """
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is not signal.SIG_IGN:
                signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if not self._holding:
            raise Interrupted(signum)
        self._held = self._held or signum
        if self._note:
            # Written straight to the file descriptor: a handler may run in
            # the middle of a console print.
            with contextlib.suppress(OSError):
                os.write(2, f"sparkles: {self._note}\n".encode())

    def ignore(self) -> None:
        """Drop stop signals from now on: the run is over."""
        self._holding, self._note = True, None

    @contextlib.contextmanager
    def held(self, note: str | None = None, reraise: bool = True) -> Iterator[None]:
        """Hold stop signals in the block; raise the first one after it.

        ``note`` is shown when a signal arrives meanwhile. With ``reraise``
        false, a held signal is dropped: the caller is shutting down anyway.
        """
        self._holding, self._note = True, note
        try:
            yield
        finally:
            self._holding, self._note = False, None
            signum, self._held = self._held, None
        if reraise and signum is not None:
            raise Interrupted(signum)
