"""Helpers shared by the CAS tests, importable by spawned processes."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterable
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import BinaryIO

from sparkles_cas import CAS, FileStorage, NodeCache

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


class CountingStorage(FileStorage):
    """File storage that counts its reads, optionally in a shared log file."""

    def __init__(self, url: str, log: Path | None = None, delay_s: float = 0.0) -> None:
        super().__init__(url)
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
        return super().open_read(key)

    def exists_many(self, keys: Iterable[str]) -> set[str]:
        self.exists_calls += 1
        return super().exists_many(keys)


def put_if_absent_in_step(
    url: str, source: Path, rounds: int, barrier: Barrier, result: Path
) -> None:
    """Race for keys ``race/0..rounds-1``; write the keys this process won."""
    storage = FileStorage(url)
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
    storage = CountingStorage(url, log=log, delay_s=0.2)
    cache = NodeCache(folder, CAS(storage))
    barrier.wait()
    for digest in digests:
        cache.fetch(digest)
