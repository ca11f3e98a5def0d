"""Fixtures for the engine's tests: a store on every backend."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from sparkles_core.store.base import Store
from sparkles_core.store.datastore import DatastoreStore
from sparkles_core.store.sqlite import SQLiteStore
from tests.emulators.datastore import datastore_emulator, index_checking_emulator

__all__ = ["datastore_emulator", "index_checking_emulator"]

# Each backend the store tests run against; a new backend adds its name here
# and a branch in open_test_store.
STORE_BACKENDS = ["sqlite", "datastore"]

# Backends that need an emulator: their tests carry the emulator marker and
# start it (once per session) before opening a store.
EMULATED = {"datastore": "datastore_emulator"}

# Every Datastore test gets a namespace of its own in this emulated project.
DATASTORE_PROJECT = "sparkles-test"


def open_test_store(backend: str, tmp_path: Path) -> Store:
    """Return an empty store of ``backend`` that lives under ``tmp_path``."""
    if backend == "sqlite":
        return SQLiteStore(tmp_path / "store" / "store.db")
    if backend == "datastore":
        namespace = f"test-{uuid.uuid4().hex[:12]}"
        url = f"datastore://{DATASTORE_PROJECT}?namespace={namespace}"
        return DatastoreStore.from_url(url)
    raise ValueError(f"unknown store backend {backend!r}")


def _backend_param(backend: str) -> object:
    """Return the parameter for ``backend``, marked if it needs an emulator."""
    marks = [pytest.mark.emulator] if backend in EMULATED else []
    return pytest.param(backend, marks=marks, id=backend)


@pytest.fixture(params=[_backend_param(b) for b in STORE_BACKENDS])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Yield an empty store, once per backend, and close it afterwards."""
    if request.param in EMULATED:
        request.getfixturevalue(EMULATED[request.param])
    opened = open_test_store(request.param, tmp_path)
    yield opened
    opened.close()
