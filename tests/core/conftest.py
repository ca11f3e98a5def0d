"""Fixtures for the engine's tests: a store on every backend."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sparkles_core.store.base import Store
from sparkles_core.store.sqlite import SQLiteStore

# Each backend the store tests run against; a new backend adds its name here
# and a branch in open_test_store.
STORE_BACKENDS = ["sqlite"]


def open_test_store(backend: str, tmp_path: Path) -> Store:
    """Return an empty store of ``backend`` that lives under ``tmp_path``."""
    if backend == "sqlite":
        return SQLiteStore(tmp_path / "store" / "store.db")
    raise ValueError(f"unknown store backend {backend!r}")


@pytest.fixture(params=STORE_BACKENDS, ids=STORE_BACKENDS)
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Yield an empty store, once per backend, and close it afterwards."""
    opened = open_test_store(request.param, tmp_path)
    yield opened
    opened.close()
