"""The ``gce://`` provisioner's errors and how it is opened."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from sparkles_core.cluster.base import ClusterContext
from sparkles_core.cluster.gce import GCEProvisioner, parse_cluster_url
from sparkles_core.config import load_config
from sparkles_core.errors import BackendError, ClusterError
from sparkles_core.models import NodeClass
from sparkles_core.plugins import open_cluster
from sparkles_core.store.sqlite import SQLiteStore
from tests.cluster.conftest import CLUSTER_URL, PROJECT, LaunchFactory
from tests.fakes.compute import FakeCompute


@pytest.mark.parametrize(
    ("kind", "phrase"),
    [
        ("quota", "quota of project 'test-project' is used up"),
        ("capacity", "has no capacity left"),
        ("permission", "grant the account roles/compute.instanceAdmin.v1"),
    ],
    ids=["quota", "capacity", "permission"],
)
def test_refused_insert_is_one_clear_cluster_error(
    fake: FakeCompute,
    provisioner: GCEProvisioner,
    store: SQLiteStore,
    make_launch: LaunchFactory,
    kind: str,
    phrase: str,
) -> None:
    fake.fail_next_insert(kind)

    with pytest.raises(ClusterError) as caught:
        provisioner.add_nodes(make_launch(), 1, NodeClass.PREEMPTIBLE)

    message = str(caught.value)
    assert phrase in message
    assert "\n" not in message
    assert caught.value.cluster_id == "c-test"
    assert fake.names() == [] and store.list_nodes("c-test") == []


def test_cluster_url_names_project_and_zone() -> None:
    assert parse_cluster_url("gce://my-project/europe-west4-b") == (
        "my-project",
        "europe-west4-b",
    )
    with pytest.raises(BackendError, match="gce://PROJECT/ZONE"):
        parse_cluster_url("gce://my-project")


def test_gce_url_opens_the_provisioner_with_the_image_from_the_environment(
    home: Path, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARKLES_WORKER_IMAGE", "example.org/worker:1")
    context = ClusterContext(CLUSTER_URL, store, store.path.parent)

    provisioner = open_cluster(context)

    assert isinstance(provisioner, GCEProvisioner)
    assert provisioner.plan.worker_image == "example.org/worker:1"
    assert provisioner.plan.project == PROJECT
    account = provisioner.plan.service_account
    assert account == f"sparkles-worker@{PROJECT}.iam.gserviceaccount.com"


def test_config_names_the_worker_image_and_the_service_account(
    home: Path, store: SQLiteStore
) -> None:
    key = {"client_email": "robot@p.iam.gserviceaccount.com", "private_key": "x"}
    Path("key.json").write_text(json.dumps(key))
    Path(".sparkles").write_text(
        "[config]\nsparklesworker_image = example.org/worker:2\n"
        "service_account_key = key.json\n"
    )

    config = load_config(overrides={"cluster": CLUSTER_URL})
    provisioner = GCEProvisioner.from_context(ClusterContext.from_config(config, store))

    assert provisioner.plan.worker_image == "example.org/worker:2"
    assert provisioner.plan.service_account == "robot@p.iam.gserviceaccount.com"


def test_missing_google_client_names_the_install_line(
    provisioner: GCEProvisioner,
    make_launch: LaunchFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import google.cloud

    monkeypatch.delattr(google.cloud, "compute_v1", raising=False)
    monkeypatch.setitem(sys.modules, "google.cloud.compute_v1", None)

    with pytest.raises(BackendError, match=r"pip install 'snakemake-executor-plugin"):
        provisioner.add_nodes(make_launch(), 1, NodeClass.STANDARD)
