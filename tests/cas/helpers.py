"""Helpers shared by the CAS tests, importable by spawned processes."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable, Iterator
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import BinaryIO

from sparkles_cas import (
    CAS,
    FileStorage,
    NodeCache,
    ObjectInfo,
    ObjectStorage,
    open_storage,
)

# Files written by the tests are dated this far back, well outside the hash
# cache's racy window, so the cache may record them at once.
SETTLED_AGE_NS = 3600 * 1_000_000_000


def write_settled(path: Path, data: bytes, executable: bool = False) -> Path:
    """Write ``data`` to ``path`` and date it an hour back."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    path.chmod(0o755 if executable else 0o644)
    settle(path)
    return path


def settle(path: Path, age_ns: int = SETTLED_AGE_NS) -> None:
    """Date ``path`` ``age_ns`` back."""
    then = time.time_ns() - age_ns
    os.utime(path, ns=(then, then))


def partial_files(folder: Path) -> list[Path]:
    """Return the partial files left anywhere under ``folder``."""
    return sorted(folder.rglob("*.sparkles-partial"))


def leftovers(storage: ObjectStorage) -> list[Path]:
    """Return the partial files a file storage left; other backends have none."""
    inner = storage.inner if isinstance(storage, CountingStorage) else storage
    return partial_files(inner.root) if isinstance(inner, FileStorage) else []


class CountingStorage(ObjectStorage):
    """A storage that counts its reads, optionally in a shared log file."""

    def __init__(
        self, inner: ObjectStorage, log: Path | None = None, delay_s: float = 0.0
    ) -> None:
        self.inner = inner
        self.url = inner.url
        self.log = log
        self.delay_s = delay_s
        self.reads: list[str] = []
        self.exists_calls = 0

    def open_read(self, key: str) -> BinaryIO:
        self.reads.append(key)
        if self.log is not None:
            with open(self.log, "a") as log:
                log.write(f"{os.getpid()} {key}\n")
        time.sleep(self.delay_s)
        return self.inner.open_read(key)

    def exists_many(self, keys: Iterable[str]) -> set[str]:
        self.exists_calls += 1
        return self.inner.exists_many(keys)

    def put_file(self, key: str, path: Path, if_absent: bool = False) -> bool:
        return self.inner.put_file(key, path, if_absent)

    def put_bytes(self, key: str, data: bytes, if_absent: bool = False) -> bool:
        return self.inner.put_bytes(key, data, if_absent)

    def get_file(self, key: str, dest: Path) -> None:
        self.inner.get_file(key, dest)

    def get_bytes(self, key: str, offset: int = 0) -> bytes:
        return self.inner.get_bytes(key, offset)

    def size(self, key: str) -> int | None:
        return self.inner.size(key)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        return self.inner.list(prefix)

    def delete(self, keys: Iterable[str]) -> None:
        self.inner.delete(keys)


def put_if_absent_in_step(
    url: str, source: Path, rounds: int, barrier: Barrier, result: Path
) -> None:
    """Race for keys ``race/0..rounds-1``; write the keys this process won."""
    storage = open_storage(url)
    won = []
    for index in range(rounds):
        barrier.wait()
        if storage.put_file(f"race/{index}", source, if_absent=True):
            won.append(index)
    result.write_text(json.dumps(won))


def fetch_together(
    url: str, folder: Path, digests: list[str], barrier: Barrier, log: Path
) -> None:
    """Fetch ``digests`` into the node cache, logging each storage read."""
    storage = CountingStorage(open_storage(url), log=log, delay_s=0.2)
    cache = NodeCache(folder, CAS(storage))
    barrier.wait()
    for digest in digests:
        cache.fetch(digest)
