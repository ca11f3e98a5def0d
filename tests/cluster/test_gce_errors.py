"""The ``gce://`` provisioner's refusals, its zones, and how it is opened."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from sparkles_core.cluster.base import ClusterContext
from sparkles_core.cluster.gce import GCEProvisioner, parse_cluster_url
from sparkles_core.cluster.gce_instance import NodePlan
from sparkles_core.cluster.gce_zones import Placement
from sparkles_core.config import load_config
from sparkles_core.errors import BackendError, ClusterError
from sparkles_core.models import NodeClass, NodeStatus
from sparkles_core.plugins import open_cluster
from sparkles_core.store.sqlite import SQLiteStore
from tests.cluster.conftest import CLUSTER_URL, PROJECT, WORKER_IMAGE, LaunchFactory
from tests.fakes.compute import FakeCompute
from tests.fakes.service_account import EMAIL, write_key

TWO_ZONES = f"gce://{PROJECT}/us-central1-a,us-central1-b"


def provisioner_for(store: SQLiteStore, url: str) -> GCEProvisioner:
    return GCEProvisioner(store, NodePlan(WORKER_IMAGE), url)


@pytest.mark.parametrize(
    ("kind", "phrase"),
    [
        ("quota", "quota of project 'test-project' is used up"),
        ("permission", "grant your account roles/compute.instanceAdmin.v1"),
    ],
    ids=["quota", "permission"],
)
def test_refusal_that_waiting_cannot_cure_is_one_clear_cluster_error(
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


def test_permission_error_names_the_resource_but_not_the_request_url(
    fake: FakeCompute, provisioner: GCEProvisioner, make_launch: LaunchFactory
) -> None:
    fake.fail_next_insert("permission")

    with pytest.raises(ClusterError) as caught:
        provisioner.add_nodes(make_launch(), 1, NodeClass.STANDARD)

    message = str(caught.value)
    assert "Required 'compute.instances.create' permission" in message
    assert "projects/test-project/zones/us-central1-a/instances/" in message
    assert "http" not in message and "POST" not in message
    assert "iam.serviceAccountUser on the nodes' service account" in message


@pytest.mark.parametrize(
    "kind", ["capacity", "rate", "unavailable"], ids=["capacity", "rate", "5xx"]
)
def test_shortage_in_the_only_zone_starts_fewer_nodes_and_says_so(
    fake: FakeCompute,
    provisioner: GCEProvisioner,
    make_launch: LaunchFactory,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    fake.fail_next_insert(kind)

    assert provisioner.add_nodes(make_launch(), 1, NodeClass.PREEMPTIBLE) == []

    assert fake.names() == []
    assert "started 0 of 1 preemptible nodes" in caplog.text
    (node,) = provisioner.add_nodes(make_launch(), 1, NodeClass.PREEMPTIBLE)
    assert fake.names() == [node.id]


def test_capacity_shortage_moves_the_node_to_the_next_zone(
    fake: FakeCompute, store: SQLiteStore, make_launch: LaunchFactory
) -> None:
    provisioner = provisioner_for(store, TWO_ZONES)
    fake.fail_next_insert("capacity", zone="us-central1-a")
    fake.fail_next_insert("capacity", zone="us-central1-a")

    nodes = provisioner.add_nodes(make_launch(), 2, NodeClass.PREEMPTIBLE)

    assert len(nodes) == 2
    assert {node.detail["zone"] for node in nodes} == {"us-central1-b"}
    assert [fake.instance(n.id)["zone"].rsplit("/", 1)[-1] for n in nodes] == [
        "us-central1-b",
        "us-central1-b",
    ]


def test_nodes_are_spread_over_the_zones(
    fake: FakeCompute, store: SQLiteStore, make_launch: LaunchFactory
) -> None:
    provisioner = provisioner_for(store, TWO_ZONES)

    nodes = provisioner.add_nodes(make_launch(), 4, NodeClass.STANDARD)

    zones = sorted(node.detail["zone"] for node in nodes)
    assert zones == ["us-central1-a"] * 2 + ["us-central1-b"] * 2
    assert sorted(provisioner.refresh("c-test"), key=lambda n: n.id) == sorted(
        store.list_nodes("c-test"), key=lambda n: n.id
    )
    provisioner.stop_cluster("c-test")
    assert fake.names() == []


def test_zone_without_the_machine_type_is_left_out(
    fake: FakeCompute, store: SQLiteStore, make_launch: LaunchFactory
) -> None:
    provisioner = provisioner_for(store, TWO_ZONES)
    fake.fail_next_insert("unsupported", zone="us-central1-a")

    first = provisioner.add_nodes(make_launch(), 1, NodeClass.STANDARD)
    later = provisioner.add_nodes(make_launch(), 2, NodeClass.STANDARD)

    assert {n.detail["zone"] for n in [*first, *later]} == {"us-central1-b"}
    assert [zone for zone, _ in fake.inserts()].count("us-central1-a") == 1


def test_machine_type_no_zone_offers_is_a_cluster_error(
    fake: FakeCompute, provisioner: GCEProvisioner, make_launch: LaunchFactory
) -> None:
    fake.fail_next_insert("unsupported")

    with pytest.raises(ClusterError, match="does not exist in zone 'us-central1-a'"):
        provisioner.add_nodes(make_launch(), 1, NodeClass.STANDARD)


def test_region_alone_uses_the_zones_the_api_lists(
    fake: FakeCompute, store: SQLiteStore, make_launch: LaunchFactory
) -> None:
    # us-east1 has no zone "a": guessing "us-east1-a" would fail here.
    provisioner = provisioner_for(store, f"gce://{PROJECT}/us-east1")

    nodes = provisioner.add_nodes(make_launch(), 3, NodeClass.STANDARD)
    provisioner.add_nodes(make_launch(), 1, NodeClass.STANDARD)

    assert sorted(n.detail["zone"] for n in nodes) == [
        "us-east1-b",
        "us-east1-c",
        "us-east1-d",
    ]
    region_calls = [c for c in fake.calls if "/regions/" in c.path]
    assert [c.path.rsplit("/", 1)[-1] for c in region_calls] == ["us-east1"]


def test_unknown_region_is_a_cluster_error_naming_the_cluster(
    fake: FakeCompute, store: SQLiteStore, make_launch: LaunchFactory
) -> None:
    provisioner = provisioner_for(store, f"gce://{PROJECT}/mars-north1")

    with pytest.raises(ClusterError, match="regions/mars-north1' was not found"):
        provisioner.add_nodes(make_launch(), 1, NodeClass.STANDARD)


def test_busy_api_leaves_the_node_records_as_they_were(
    fake: FakeCompute,
    provisioner: GCEProvisioner,
    make_launch: LaunchFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (node,) = provisioner.add_nodes(make_launch(), 1, NodeClass.STANDARD)
    fake.fail_next_list("rate")

    (kept,) = provisioner.refresh("c-test")

    assert (kept.id, kept.status) == (node.id, NodeStatus.STAGING)
    assert "nodes not refreshed" in caplog.text
    (refreshed,) = provisioner.refresh("c-test")
    assert refreshed.status is NodeStatus.RUNNING


def test_busy_preemption_listing_keeps_the_nodes_until_the_next_refresh(
    fake: FakeCompute,
    provisioner: GCEProvisioner,
    make_launch: LaunchFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    spot = provisioner.add_nodes(make_launch(), 2, NodeClass.PREEMPTIBLE)
    for node in spot:
        fake.preempt(node.id, graceful=False)
    # The client library retries a 503 on these reads by itself; a rate
    # limit reaches the provisioner.
    fake.fail_next_call("preemptions", "rate")

    kept = provisioner.refresh("c-test")

    assert [node.status for node in kept] == [NodeStatus.STAGING] * 2
    assert f"Node {spot[0].id}: not refreshed" in caplog.text
    preemption_lists = [c for c in fake.calls if c.path.endswith("/operations")]
    assert len(preemption_lists) == 1, "one failed listing per zone and round"
    refreshed = provisioner.refresh("c-test")
    assert [node.detail["reason"] for node in refreshed] == ["preempted"] * 2


def test_busy_exit_status_read_keeps_the_stopped_instance_for_the_next_refresh(
    fake: FakeCompute,
    provisioner: GCEProvisioner,
    make_launch: LaunchFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    (node,) = provisioner.add_nodes(make_launch(), 1, NodeClass.STANDARD)
    fake.set_status(node.id, "TERMINATED")
    fake.fail_next_call("guest-attributes", "rate")

    (kept,) = provisioner.refresh("c-test")

    assert kept.status is NodeStatus.STAGING
    assert f"Node {node.id}: not refreshed" in caplog.text
    assert fake.names() == [node.id], "its exit status is still to be read"
    (refreshed,) = provisioner.refresh("c-test")
    assert refreshed.status is NodeStatus.FAILED
    assert refreshed.detail["reason"] == "terminated before its worker ended"


def test_busy_zone_listing_starts_no_node_this_round_and_some_the_next(
    fake: FakeCompute,
    store: SQLiteStore,
    make_launch: LaunchFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    provisioner = provisioner_for(store, f"gce://{PROJECT}/us-east1")
    fake.fail_next_call("region", "rate")

    assert provisioner.add_nodes(make_launch(), 2, NodeClass.STANDARD) == []

    assert "Listing the zones of region 'us-east1' failed" in caplog.text
    assert "started 0 of 2 standard nodes" in caplog.text
    assert fake.names() == []
    assert len(provisioner.add_nodes(make_launch(), 2, NodeClass.STANDARD)) == 2


def test_cluster_url_names_the_project_and_its_zones() -> None:
    assert parse_cluster_url("gce://my-project/europe-west4-b") == Placement(
        "my-project", "europe-west4", ("europe-west4-b",)
    )
    assert parse_cluster_url("gce://p/us-east1-b,us-east1-c").zones == (
        "us-east1-b",
        "us-east1-c",
    )
    assert parse_cluster_url("gce://p/us-east1") == Placement("p", "us-east1")


@pytest.mark.parametrize(
    "url",
    ["gce://my-project", "gce://p/us-east1-b,europe-west1-b", "gce://p/us-east1-"],
    ids=["no-zone", "two-regions", "half-zone"],
)
def test_bad_cluster_url_says_what_is_expected(url: str) -> None:
    with pytest.raises(BackendError, match=r"gce://PROJECT/ZONE|several regions"):
        parse_cluster_url(url)


def test_gce_url_opens_the_provisioner_with_the_image_from_the_environment(
    home: Path, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARKLES_WORKER_IMAGE", "example.org/worker:1")
    context = ClusterContext(CLUSTER_URL, store, store.path.parent)

    provisioner = open_cluster(context)

    assert isinstance(provisioner, GCEProvisioner)
    assert provisioner.plan.worker_image == "example.org/worker:1"
    assert provisioner.placement.project == PROJECT
    account = provisioner.plan.service_account
    assert account == f"sparkles-worker@{PROJECT}.iam.gserviceaccount.com"


def test_configured_key_names_the_nodes_account_and_signs_the_api_calls(
    home: Path, store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SPARKLES_COMPUTE_ENDPOINT", raising=False)
    write_key(Path("key.json"))
    Path(".sparkles").write_text(
        "[config]\nsparklesworker_image = example.org/worker:2\n"
        "service_account_key = key.json\n"
    )

    config = load_config(overrides={"cluster": CLUSTER_URL})
    provisioner = GCEProvisioner.from_context(ClusterContext.from_config(config, store))

    assert provisioner.plan.worker_image == "example.org/worker:2"
    assert provisioner.plan.service_account == EMAIL
    clients = provisioner._api._open()
    for client in (clients.instances, clients.operations, clients.regions):
        assert client._transport._credentials.service_account_email == EMAIL


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
