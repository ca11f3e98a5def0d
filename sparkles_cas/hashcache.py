"""A persistent cache of file digests, so an unchanged file is hashed once.

The cache is one SQLite file in WAL mode, so several processes can use it at
once, holding one table::

    file_digest
        path      TEXT PRIMARY KEY   absolute path of the file
        size      INTEGER            st_size when it was hashed
        mtime_ns  INTEGER            st_mtime_ns when it was hashed
        inode     INTEGER            st_ino when it was hashed
        digest    TEXT               sha256 of the content, lowercase hex

A row answers for a file only while the file's size, mtime and inode are
still the ones in the row. ``PRAGMA user_version`` holds the schema version;
a file with another version is emptied and reused. The cache only saves
time, so a file SQLite cannot read is deleted and rebuilt with a warning.

A file modified within ``RACY_WINDOW_NS`` before it was read is not
recorded: a second write in the same clock tick as the first could change
its content without changing its mtime. Its next scan records it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TypeVar

__all__ = ["RACY_WINDOW_NS", "HashCache"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 1

# File systems stamp mtimes from a clock that ticks every 1-10 ms, or every
# 2 s on FAT; one second covers local disks with room to spare.
RACY_WINDOW_NS = 1_000_000_000

# Every SQLite build accepts at least 999 parameters in one statement.
_BATCH = 900

# Wait this long for another process's write to finish before giving up.
_BUSY_TIMEOUT_S = 10.0

# SQLite primary result codes that mean "in use", not "damaged".
_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6

_CREATE = """
CREATE TABLE file_digest (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    inode INTEGER NOT NULL,
    digest TEXT NOT NULL
) WITHOUT ROWID
"""

_MEMORY = ":memory:"

_Row = tuple[str, int, int, int, str]
_T = TypeVar("_T")


class HashCache:
    """Digests of files, remembered across runs and processes."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        self._lock = threading.Lock()
        self._db = _open_or_rebuild(self.db_path)

    def lookup(self, stats: Mapping[Path, os.stat_result]) -> dict[Path, str]:
        """Return the cached digests of the files that have not changed."""
        keys = {path: os.path.abspath(path) for path in stats}
        no_rows: list[_Row] = []
        rows = self._guarded("lookup", lambda db: _select(db, keys.values()), no_rows)
        known = {row[0]: row for row in rows}
        found: dict[Path, str] = {}
        for path, info in stats.items():
            row = known.get(keys[path])
            if row is not None and row[1:4] == _fingerprint(info):
                found[path] = row[4]
        return found

    def record(
        self,
        digests: Mapping[Path, tuple[os.stat_result, str]],
        read_after_ns: int,
    ) -> None:
        """Remember digests of files whose reading began after ``read_after_ns``.

        Each file comes with the stat taken before it was read.
        """
        rows = [
            (os.path.abspath(path), *_fingerprint(info), digest)
            for path, (info, digest) in digests.items()
            if info.st_mtime_ns < read_after_ns - RACY_WINDOW_NS
        ]
        if len(rows) < len(digests):
            logger.debug(
                "Hash cache %s: %d files modified too recently to record",
                self.db_path,
                len(digests) - len(rows),
            )
        if rows:
            self._guarded("update", lambda db: _insert(db, rows), None)

    def close(self) -> None:
        """Close the database."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> HashCache:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def _guarded(
        self, action: str, work: Callable[[sqlite3.Connection], _T], fallback: _T
    ) -> _T:
        """Run ``work``; on a database error, warn, recover, return ``fallback``."""
        with self._lock:
            try:
                return work(self._db)
            except sqlite3.DatabaseError as exc:
                if _is_busy(exc):
                    logger.warning(
                        "Hash cache %s: busy, skipped the %s (%s); some files "
                        "may be hashed again.",
                        self.db_path,
                        action,
                        exc,
                    )
                    return fallback
                logger.warning(
                    "Hash cache %s: %s failed (%s); rebuilding it.",
                    self.db_path,
                    action,
                    exc,
                )
                self._db.close()
                self._db = _rebuild(self.db_path)
                return fallback


def _fingerprint(info: os.stat_result) -> tuple[int, int, int]:
    """Return what identifies one version of a file: size, mtime, inode."""
    return info.st_size, info.st_mtime_ns, info.st_ino


def _select(db: sqlite3.Connection, keys: Iterable[str]) -> list[_Row]:
    """Return the rows for ``keys``, in batches of bound parameters."""
    wanted = list(dict.fromkeys(keys))
    rows: list[_Row] = []
    for start in range(0, len(wanted), _BATCH):
        batch = wanted[start : start + _BATCH]
        marks = ",".join("?" * len(batch))
        rows += db.execute(
            f"SELECT path, size, mtime_ns, inode, digest FROM file_digest "
            f"WHERE path IN ({marks})",
            batch,
        ).fetchall()
    return rows


def _insert(db: sqlite3.Connection, rows: list[_Row]) -> None:
    """Write ``rows`` in one transaction, replacing older rows."""
    db.execute("BEGIN IMMEDIATE")
    try:
        db.executemany(
            "INSERT OR REPLACE INTO file_digest VALUES (?, ?, ?, ?, ?)", rows
        )
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _is_busy(exc: sqlite3.Error) -> bool:
    """Return True if ``exc`` means another connection holds the database."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    return code in (_SQLITE_BUSY, _SQLITE_LOCKED)


def _open_or_rebuild(db_path: Path) -> sqlite3.Connection:
    """Open the cache; if it cannot be read, warn and rebuild it."""
    try:
        return _connect(db_path)
    except (OSError, sqlite3.DatabaseError) as exc:
        if isinstance(exc, sqlite3.Error) and _is_busy(exc):
            return _in_memory(db_path, exc)
        logger.warning(
            "Hash cache %s: cannot read it (%s); rebuilding it, so files will "
            "be hashed again once.",
            db_path,
            exc,
        )
    return _rebuild(db_path)


def _rebuild(db_path: Path) -> sqlite3.Connection:
    """Delete the cache's files and start an empty cache."""
    try:
        for suffix in ("", "-wal", "-shm", "-journal"):
            path = db_path.with_name(db_path.name + suffix)
            if path.exists() or path.is_symlink():
                path.unlink()
        return _connect(db_path)
    except (OSError, sqlite3.DatabaseError) as exc:
        return _in_memory(db_path, exc)


def _in_memory(db_path: Path, exc: Exception) -> sqlite3.Connection:
    """Warn that ``db_path`` is unusable and return a cache for this run."""
    logger.warning(
        "Hash cache %s: unusable (%s); keeping digests in memory for this "
        "run only. Check that the file and its folder are writable.",
        db_path,
        exc,
    )
    return _connect(_MEMORY)


def _connect(db_path: Path | str) -> sqlite3.Connection:
    """Open the database at ``db_path``, creating its table if needed."""
    if db_path != _MEMORY:
        Path(db_path).parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(
        db_path,
        timeout=_BUSY_TIMEOUT_S,
        isolation_level=None,
        check_same_thread=False,
    )
    try:
        db.execute("PRAGMA journal_mode=WAL")
        # A lost update after a power cut costs a re-hash, not a wrong digest.
        db.execute("PRAGMA synchronous=NORMAL")
        _ensure_schema(db)
    except BaseException:
        db.close()
        raise
    return db


def _ensure_schema(db: sqlite3.Connection) -> None:
    """Create the table, replacing one of another schema version."""
    if _schema_version(db) == SCHEMA_VERSION:
        db.execute("SELECT 1 FROM file_digest LIMIT 1").fetchall()
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        # Another process may have created it while this one waited.
        if _schema_version(db) != SCHEMA_VERSION:
            db.execute("DROP TABLE IF EXISTS file_digest")
            db.execute(_CREATE)
            db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def _schema_version(db: sqlite3.Connection) -> int:
    """Return the database's ``user_version``."""
    version: int = db.execute("PRAGMA user_version").fetchone()[0]
    return version
