"""Keep a second Ctrl-C from cutting the clean-up of a run short.

The first Ctrl-C makes Snakemake cancel the jobs and shut the executor down;
killing the tasks and stopping the nodes takes a few seconds. A second
Ctrl-C in that window would abandon the clean-up and leave nodes running
(and, in the cloud, billing), so it is ignored until the clean-up is done.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["sigint_ignored"]


@contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT inside the block, then restore the previous handler."""
    # Only the main thread may change signal handlers, and only the main
    # thread receives SIGINT as KeyboardInterrupt anyway.
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
