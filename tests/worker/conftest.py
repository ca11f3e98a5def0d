"""Fixtures for the worker tests that run a Worker in this process."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from sparkles_core.store.sqlite import SQLiteStore


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """Yield a real SQLite store in the test's folder, closed afterwards."""
    opened = SQLiteStore(tmp_path / "store.db")
    yield opened
    opened.close()
