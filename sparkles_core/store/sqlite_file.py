"""One SQLite file with a connection per thread and one-line errors.

The store in :mod:`sparkles_core.store.sqlite` keeps its tables here. This
module owns the file itself: it creates the folder, switches the file to WAL
(readers never wait for the writer), creates or checks the tables (``PRAGMA
user_version`` holds :data:`SCHEMA_VERSION`; a file of an older version is
brought up to date in place), hands each thread of each process its own
connection, and turns every ``sqlite3`` error into a
:class:`~sparkles_core.errors.StoreError` that says what to do.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path

from sparkles_core.errors import StoreError

__all__ = ["SCHEMA_VERSION", "SQLiteFile"]

logger = logging.getLogger(__name__)

SCHEMA_VERSION = 2

# Every write is a few rows, so a writer holding the file for a whole minute
# is a stuck process rather than load; until then, callers queue.
_BUSY_TIMEOUT_S = 60.0

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY, status TEXT NOT NULL, cluster TEXT NOT NULL,
        submit_time REAL NOT NULL, record TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS tasks (
        id TEXT PRIMARY KEY, job_id TEXT NOT NULL, idx INTEGER NOT NULL,
        cluster TEXT NOT NULL, status TEXT NOT NULL, owner TEXT,
        lease_expires REAL, attempt INTEGER NOT NULL, record TEXT NOT NULL,
        ended REAL)""",
    "CREATE INDEX IF NOT EXISTS jobs_cluster ON jobs (cluster)",
    "CREATE UNIQUE INDEX IF NOT EXISTS tasks_job_idx ON tasks (job_id, idx)",
    "CREATE INDEX IF NOT EXISTS tasks_job_status ON tasks (job_id, status)",
    "CREATE INDEX IF NOT EXISTS tasks_cluster_status ON tasks (cluster, status, idx)",
    "CREATE INDEX IF NOT EXISTS tasks_owner ON tasks (owner)",
    "CREATE INDEX IF NOT EXISTS tasks_job_ended ON tasks (job_id, ended)",
    """CREATE TABLE IF NOT EXISTS nodes (
        id TEXT PRIMARY KEY, cluster TEXT NOT NULL, record TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS nodes_cluster ON nodes (cluster)",
)

# What turns a file of the version before each key into that version; the
# indexes of _SCHEMA are created afterwards in any case.
_UPGRADES: dict[int, tuple[str, ...]] = {
    # 2: when each finished task finished, for the monitor's "since" query.
    2: (
        "ALTER TABLE tasks ADD COLUMN ended REAL",
        "UPDATE tasks SET ended = json_extract(record, '$.history[#-1].time')"
        " WHERE status IN ('complete', 'failed', 'killed')",
    ),
}

# Matched against the lowered SQLite message, first hit wins.
_ADVICE = (
    ("locked", "another process has held it for over a minute; stop stuck ones"),
    ("busy", "another process has held it for over a minute; stop stuck ones"),
    ("unable to open", "check that its folder exists and that you may write it"),
    ("readonly", "make the file and its folder writable for this user"),
    ("not a database", "the file is damaged or not a store; move it aside"),
    ("malformed", "the file is damaged; move it aside to start a new store"),
    ("is full", "free some disk space"),
    ("i/o", "check the disk and the permissions of the file's folder"),
)


class SQLiteFile:
    """The store's database file, opened once per thread of each process."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._connections: dict[tuple[int, int], sqlite3.Connection] = {}
        self._lock = threading.Lock()
        self._closed = False
        try:
            _make_folder(self.path)
            self._prepare()
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        """Close this process's connections; the store is unusable afterwards."""
        with self._lock:
            self._closed = True
            pid = os.getpid()
            for (owner_pid, _), conn in self._connections.items():
                # A connection inherited through fork belongs to the parent.
                if owner_pid == pid:
                    conn.close()
            self._connections.clear()

    def _prepare(self) -> None:
        """Switch the file to WAL and create or check the tables."""
        with self.read("open the store") as conn:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode = WAL")
            (version,) = conn.execute("PRAGMA user_version").fetchone()
        if version == SCHEMA_VERSION:
            return
        with self.write("create the tables") as conn:
            (version,) = conn.execute("PRAGMA user_version").fetchone()
            if version > SCHEMA_VERSION:
                raise StoreError(
                    f"Store {str(self.path)!r} has schema version {version}, "
                    f"newer than this Sparkles knows ({SCHEMA_VERSION}); upgrade "
                    "Sparkles."
                )
            # Version 0 is a new file: _SCHEMA creates it whole.
            for step in range(version + 1, SCHEMA_VERSION + 1) if version else ():
                for statement in _UPGRADES.get(step, ()):
                    conn.execute(statement)
            for statement in _SCHEMA:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        if version:
            logger.info("Store %s: upgraded from schema %d", self.path, version)
        else:
            logger.info("Store %s: created tables", self.path)

    def connection(self) -> sqlite3.Connection:
        """Return this thread's connection, opening it on first use."""
        key = (os.getpid(), threading.get_ident())
        conn = self._connections.get(key)
        if conn is not None:
            return conn
        with self._lock:
            if self._closed:
                raise StoreError(f"Store {str(self.path)!r} is closed; open it again.")
            conn = sqlite3.connect(
                self.path,
                timeout=_BUSY_TIMEOUT_S,
                isolation_level=None,
                check_same_thread=False,
            )
            self._connections[key] = conn
        conn.execute("PRAGMA synchronous = NORMAL")
        return conn

    @contextmanager
    def read(
        self, action: str, begin: str | None = None
    ) -> Iterator[sqlite3.Connection]:
        """Run reads, in one snapshot if ``begin``; translate SQLite errors."""
        try:
            conn = self.connection()
            if begin is not None:
                conn.execute(begin)
            try:
                yield conn
                if begin is not None:
                    conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    with suppress(sqlite3.Error):
                        conn.execute("ROLLBACK")
                raise
        except sqlite3.Error as exc:
            raise StoreError(_explain(self.path, action, exc)) from exc

    def write(self, action: str) -> AbstractContextManager[sqlite3.Connection]:
        """Run one write transaction, holding the file's write lock throughout."""
        return self.read(action, begin="BEGIN IMMEDIATE")


def _make_folder(path: Path) -> None:
    """Create the folder that will hold the database file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreError(
            f"Store {str(path)!r}: could not create the folder "
            f"{str(path.parent)!r} ({exc.strerror or exc}); choose a location "
            "you can write to."
        ) from exc


def _explain(path: Path, action: str, exc: sqlite3.Error) -> str:
    """Return a one-line message for a SQLite error, saying what to do."""
    text = str(exc)
    lowered = text.lower()
    advice = next(
        (advice for needle, advice in _ADVICE if needle in lowered),
        "check that the file is a Sparkles store you may read and write",
    )
    return f"Store {str(path)!r}: could not {action} ({text}); {advice}."
