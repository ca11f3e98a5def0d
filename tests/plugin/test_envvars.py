"""The object that keeps a job's --envvars values out of its task record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_sparkles.envvars import discard_envvars, store_envvars
from sparkles_cas.filestore import FileStorage


@pytest.fixture
def storage(tmp_path: Path) -> FileStorage:
    return FileStorage(f"file://{tmp_path / 'storage'}")


def test_variables_go_into_one_object_under_the_job(storage: FileStorage) -> None:
    key = store_envvars(storage, "sm-1", {"TOKEN": "t0k3n"})

    assert key == "jobs/sm-1/env.json"
    assert json.loads(storage.get_bytes(key)) == {"TOKEN": "t0k3n"}


def test_no_variables_store_nothing(storage: FileStorage) -> None:
    assert store_envvars(storage, "sm-1", {}) is None
    assert list(storage.list("jobs/")) == []


def test_a_write_sent_again_accepts_its_own_object(storage: FileStorage) -> None:
    first = store_envvars(storage, "sm-1", {"TOKEN": "t0k3n"})

    assert store_envvars(storage, "sm-1", {"TOKEN": "t0k3n"}) == first


def test_another_jobs_object_is_neither_replaced_nor_shown(
    storage: FileStorage,
) -> None:
    store_envvars(storage, "sm-1", {"TOKEN": "theirs"})

    with pytest.raises(WorkflowError, match="already exists") as info:
        store_envvars(storage, "sm-1", {"TOKEN": "mine"})

    assert "theirs" not in str(info.value) and "mine" not in str(info.value)
    assert json.loads(storage.get_bytes("jobs/sm-1/env.json")) == {"TOKEN": "theirs"}


def test_discarding_removes_the_object(storage: FileStorage) -> None:
    key = store_envvars(storage, "sm-1", {"TOKEN": "t0k3n"})

    discard_envvars(storage, key)

    assert not storage.exists("jobs/sm-1/env.json")
