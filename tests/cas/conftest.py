"""Fixtures for the CAS tests: a storage on every backend, a hash cache, a CAS.

The ``storage`` fixture, and every fixture built on it, runs each test once
per backend: a local folder, and a bucket on fake-gcs-server (marked
``emulator``; skipped when the emulator is missing).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sparkles_cas import CAS, HashCache, NodeCache, open_storage
from tests.cas.helpers import CountingStorage, write_settled
from tests.emulators.gcs import gcs_bucket, gcs_emulator

__all__ = ["MakeFile", "gcs_bucket", "gcs_emulator"]

MakeFile = Callable[..., Path]

STORAGE_BACKENDS = [
    pytest.param("file", id="file"),
    pytest.param("gcs", id="gcs", marks=pytest.mark.emulator),
]


@pytest.fixture
def storage_root(tmp_path: Path) -> Path:
    """Return the folder behind the file storage (not yet created)."""
    return tmp_path / "storage"


@pytest.fixture(params=STORAGE_BACKENDS)
def storage_url(request: pytest.FixtureRequest, storage_root: Path) -> str:
    """Return the URL of an empty storage, once per backend."""
    if request.param == "file":
        return f"file://{storage_root}"
    bucket = request.getfixturevalue("gcs_bucket")
    # A prefix, so that the tests also check that keys stay under it.
    return f"gs://{bucket}/sparkles"


@pytest.fixture
def storage(storage_url: str) -> CountingStorage:
    """Return the test storage, counting its reads."""
    return CountingStorage(open_storage(storage_url))


@pytest.fixture
def hash_cache(tmp_path: Path) -> Iterator[HashCache]:
    """Return a hash cache in the test's folder."""
    with HashCache(tmp_path / "state" / "hashes.db") as cache:
        yield cache


@pytest.fixture
def cas(storage: CountingStorage, hash_cache: HashCache) -> CAS:
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
