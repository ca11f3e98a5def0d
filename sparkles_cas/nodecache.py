"""A node-wide cache of CAS contents, shared by the worker processes of a node.

Each content is downloaded once per node, into::

    <folder>/<digest[:2]>/<digest>        the verified content
    <folder>/<digest[:2]>/<digest>.lock   lock file; once the content is in
                                          place it holds its size in bytes

A process holds an exclusive ``flock`` on the lock file while it checks and
downloads the content, so concurrent processes wait for one download
instead of making their own. Tasks get copies, never the cached file, since
a task may modify its inputs in place. A cached file whose size differs from
the recorded one is downloaded again.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from sparkles_cas._atomic import discard, make_executable, partial_path
from sparkles_cas.cas import CAS
from sparkles_cas.hashing import check_digest

__all__ = ["NodeCache"]

logger = logging.getLogger(__name__)

# The recorded size is a decimal number of at most 20 digits.
_SIZE_BYTES = 32


class NodeCache:
    """CAS contents downloaded once per node and copied out to tasks."""

    # TODO: nothing is ever evicted; a long-lived node needs a size limit
    # with least-recently-used eviction that skips digests under lock.

    def __init__(self, folder: Path, cas: CAS) -> None:
        self.folder = Path(folder)
        self.cas = cas

    def path_for(self, digest: str) -> Path:
        """Return where the content with ``digest`` is cached."""
        check_digest(digest)
        return self.folder / digest[:2] / digest

    def fetch(self, digest: str) -> Path:
        """Return the cached copy of ``digest``, downloading it if needed."""
        path = self.path_for(digest)
        path.parent.mkdir(parents=True, exist_ok=True)
        with _locked(path.with_name(f"{digest}.lock")) as lock:
            if self._is_intact(path, lock):
                return path
            self.cas.download(digest, path)
            _write_size(lock, path.stat().st_size)
        logger.debug("Node cache %s: fetched %s", self.folder, digest)
        return path

    def place(self, digest: str, dest: Path, executable: bool = False) -> None:
        """Put a private copy of the content with ``digest`` at ``dest``."""
        source = self.fetch(digest)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        temp = partial_path(dest)
        try:
            shutil.copyfile(source, temp)
            if executable:
                make_executable(temp)
            os.replace(temp, dest)
        except BaseException:
            discard(temp)
            raise

    def _is_intact(self, path: Path, lock: int) -> bool:
        """Return True if ``path`` holds a complete earlier download."""
        recorded = _read_size(lock)
        try:
            actual = path.stat().st_size
        except FileNotFoundError:
            return False
        if recorded == actual:
            return True
        logger.warning(
            "Node cache %s: %s has %d bytes, expected %s; downloading it again.",
            self.folder,
            path.name,
            actual,
            recorded if recorded is not None else "an unknown size",
        )
        return False


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[int]:
    """Hold an exclusive lock on ``lock_path``; yield its file descriptor."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o666)
    try:
        # flock locks conflict between open file descriptions, so this also
        # serializes threads of one process that each opened the file.
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield fd
    finally:
        os.close(fd)


def _read_size(fd: int) -> int | None:
    """Return the size recorded in the lock file, or None if there is none."""
    text = os.pread(fd, _SIZE_BYTES, 0).strip()
    return int(text) if text.isdigit() else None


def _write_size(fd: int, size: int) -> None:
    """Record ``size`` in the lock file."""
    os.ftruncate(fd, 0)
    os.pwrite(fd, b"%d\n" % size, 0)
