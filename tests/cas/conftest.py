"""Fixtures for the CAS tests: a file storage, a hash cache, a CAS."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sparkles_cas import CAS, FileStorage, HashCache, NodeCache
from tests.cas.helpers import CountingStorage, write_settled

MakeFile = Callable[..., Path]


@pytest.fixture
def storage_root(tmp_path: Path) -> Path:
    """Return the folder behind the test storage (not yet created)."""
    return tmp_path / "storage"


@pytest.fixture
def storage(storage_root: Path) -> CountingStorage:
    """Return a file storage that counts its reads."""
    return CountingStorage(f"file://{storage_root}")


@pytest.fixture
def hash_cache(tmp_path: Path) -> Iterator[HashCache]:
    """Return a hash cache in the test's folder."""
    with HashCache(tmp_path / "state" / "hashes.db") as cache:
        yield cache


@pytest.fixture
def cas(storage: FileStorage, hash_cache: HashCache) -> CAS:
    """Return a CAS over the test storage, with a hash cache."""
    return CAS(storage, hash_cache)


@pytest.fixture
def node_cache(tmp_path: Path, cas: CAS) -> NodeCache:
    """Return a node cache over the test CAS."""
    return NodeCache(tmp_path / "node-cache", cas)


@pytest.fixture
def make_file(tmp_path: Path) -> MakeFile:
    """Return a function that writes a settled input file under ``inputs/``."""

    def make(name: str, data: bytes, executable: bool = False) -> Path:
        return write_settled(tmp_path / "inputs" / name, data, executable)

    return make
