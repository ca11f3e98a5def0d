"""Fixtures for the cluster tests: a fake Compute API, a store, a provisioner."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from sparkles_core.cluster.base import WorkerLaunch
from sparkles_core.cluster.gce import GCEProvisioner
from sparkles_core.cluster.gce_api import ENDPOINT_ENV
from sparkles_core.cluster.gce_instance import NodePlan
from sparkles_core.models import MachineSpec
from sparkles_core.store.sqlite import SQLiteStore
from tests.fakes.compute import FakeCompute

PROJECT = "test-project"
ZONE = "us-central1-a"
CLUSTER_URL = f"gce://{PROJECT}/{ZONE}"
WORKER_IMAGE = "us-central1-docker.pkg.dev/test-project/sparkles/sparkles-worker:t"

LaunchFactory = Callable[..., WorkerLaunch]


@pytest.fixture
def fake(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeCompute]:
    """Yield a running fake Compute API that the Google client talks to."""
    compute = FakeCompute(tmp_path / "nodes").start()
    monkeypatch.setenv(ENDPOINT_ENV, compute.endpoint)
    yield compute
    compute.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    """Yield a SQLite store in a temp folder, shared with the workers."""
    opened = SQLiteStore.from_url(f"sqlite://{tmp_path}/store.db")
    yield opened
    opened.close()


@pytest.fixture
def provisioner(fake: FakeCompute, store: SQLiteStore) -> GCEProvisioner:
    """Return a provisioner for the fake's project and zone."""
    return GCEProvisioner(store, NodePlan(WORKER_IMAGE), CLUSTER_URL)


@pytest.fixture
def make_launch(store: SQLiteStore, tmp_path: Path) -> LaunchFactory:
    """Return a function that builds a WorkerLaunch for a cluster."""

    def make(cluster: str = "c-test", **fields: Any) -> WorkerLaunch:
        machine = fields.pop("machine", MachineSpec(machine_type="n2-standard-2"))
        values: dict[str, Any] = {
            "cluster_id": cluster,
            "store_url": store.url,
            "storage_url": f"file://{tmp_path}/storage",
            "machine": machine,
            "job_id": "job-1",
            "linger_s": 60.0,
            "lease_s": 30.0,
            "log_interval_s": 1.0,
        }
        values.update(fields)
        return WorkerLaunch(**values)

    return make
