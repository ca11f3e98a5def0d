"""The ``gce://`` provisioner against the fake Compute API, with real workers."""

from __future__ import annotations

import json
import subprocess
import time
from typing import Any

import pytest

from sparkles_core.cluster.base import WorkerLaunch
from sparkles_core.cluster.gce import GCEProvisioner
from sparkles_core.errors import ClusterError
from sparkles_core.models import (
    GPU,
    DataDisk,
    Job,
    JobSpec,
    MachineSpec,
    NodeClass,
    NodeStatus,
    Task,
    TaskSpec,
    TaskStatus,
)
from sparkles_core.monitor.checks import ResetOrphans, ResizeCluster
from sparkles_core.store.sqlite import SQLiteStore
from sparkles_core.submit import store_job
from tests.cluster.conftest import ZONE, LaunchFactory
from tests.conftest import wait_for
from tests.fakes.compute import FakeCompute

# The first attempt blocks (and gets preempted); a later one finishes.
FIRST_ATTEMPT_HANGS = 'if [ "$SPARKLES_ATTEMPT" = 1 ]; then sleep 300; fi; echo done'


def metadata(resource: dict[str, Any]) -> dict[str, str]:
    return {item["key"]: item["value"] for item in resource["metadata"]["items"]}


def task_of(store: SQLiteStore, task_id: str) -> Task:
    task = store.get_task(task_id)
    assert task is not None
    return task


def running_on(store: SQLiteStore, task_id: str, node: str) -> bool:
    task = task_of(store, task_id)
    return task.status is TaskStatus.CLAIMED and task.owner == node


def store_nodes(provisioner: GCEProvisioner, cluster: str) -> list[str]:
    return sorted(node.id for node in provisioner.refresh(cluster))


def test_add_nodes_creates_labelled_spot_instances_of_the_machine_spec(
    fake: FakeCompute, provisioner: GCEProvisioner, make_launch: LaunchFactory
) -> None:
    machine = MachineSpec(
        machine_type="n2-standard-4",
        boot_disk_gb=50,
        data_disks=(DataDisk(size_gb=200, mount_path="/mnt/disks/data"),),
        work_folder="/mnt/disks/data",
    )
    launch = make_launch(machine=machine)

    nodes = provisioner.add_nodes(launch, 2, NodeClass.PREEMPTIBLE)

    assert sorted(node.id for node in nodes) == fake.names()
    for node in nodes:
        assert node.node_class is NodeClass.PREEMPTIBLE
        resource = fake.instance(node.id)
        assert resource["labels"] == {
            "sparkles-cluster": "c-test",
            "sparkles-job": "job-1",
            "sparkles-node-class": "preemptible",
        }
        assert resource["machineType"].endswith(
            f"/zones/{ZONE}/machineTypes/n2-standard-4"
        )
        assert resource["scheduling"]["provisioningModel"] == "SPOT"
        assert resource["scheduling"]["instanceTerminationAction"] == "DELETE"
        boot, data = resource["disks"]
        assert boot["boot"] and int(boot["initializeParams"]["diskSizeGb"]) == 50
        assert "cos-cloud" in boot["initializeParams"]["sourceImage"]
        assert boot["initializeParams"]["diskType"].endswith("/pd-balanced")
        assert int(data["initializeParams"]["diskSizeGb"]) == 200
        account = resource["serviceAccounts"][0]
        assert account["scopes"] == ["https://www.googleapis.com/auth/cloud-platform"]
        assert "guestAccelerators" not in resource
    assert store_nodes(provisioner, "c-test") == sorted(n.id for n in nodes)


def test_boot_volume_type_sets_the_boot_disk_type(
    fake: FakeCompute, provisioner: GCEProvisioner, make_launch: LaunchFactory
) -> None:
    machine = MachineSpec(machine_type="n2-standard-4", boot_disk_type="pd-ssd")

    [node] = provisioner.add_nodes(make_launch(machine=machine), 1, NodeClass.STANDARD)

    boot = fake.instance(node.id)["disks"][0]
    assert boot["initializeParams"]["diskType"] == f"zones/{ZONE}/diskTypes/pd-ssd"


def test_standard_gpu_node_gets_accelerators_and_a_driver_install(
    fake: FakeCompute, provisioner: GCEProvisioner, make_launch: LaunchFactory
) -> None:
    machine = MachineSpec(
        machine_type="n1-standard-8", gpus=(GPU(type="nvidia-tesla-t4", count=2),)
    )

    (node,) = provisioner.add_nodes(make_launch(machine=machine), 1, NodeClass.STANDARD)

    resource = fake.instance(node.id)
    assert resource["guestAccelerators"] == [
        {
            "acceleratorType": f"zones/{ZONE}/acceleratorTypes/nvidia-tesla-t4",
            "acceleratorCount": 2,
        }
    ]
    assert resource["scheduling"]["provisioningModel"] == "STANDARD"
    assert resource["scheduling"]["onHostMaintenance"] == "TERMINATE"
    assert resource["labels"]["sparkles-node-class"] == "standard"
    assert "debian-cloud" in resource["disks"][0]["initializeParams"]["sourceImage"]
    script = metadata(resource)["startup-script"]
    assert "GPUS=1" in script
    assert "install_gpu_driver\n" in script and "--gpus=all" in script


def test_startup_script_runs_the_worker_image_then_powers_off(
    fake: FakeCompute, provisioner: GCEProvisioner, make_launch: LaunchFactory
) -> None:
    launch = make_launch(image="us-docker.pkg.dev/other/tools/aligner:2", linger_s=42)

    (node,) = provisioner.add_nodes(launch, 1, NodeClass.STANDARD)

    items = metadata(fake.instance(node.id))
    script = items["startup-script"]
    args = json.loads(items["sparkles-worker-args"])
    assert args[:2] == ["consume", f"--store={launch.store_url}"]
    assert f"--node-id={node.id}" in args and "--linger=42" in args
    assert "--container-runtime=docker" in args
    assert f"--cluster={launch.cluster_id}" in script
    assert f"--node-id={node.id}" in script
    assert "WORKER_IMAGE=us-central1-docker.pkg.dev/test-project/" in script
    assert "TASK_IMAGE=us-docker.pkg.dev/other/tools/aligner:2" in script
    assert "REGISTRIES=us-central1-docker.pkg.dev,us-docker.pkg.dev" in script
    assert "/var/run/docker.sock:/var/run/docker.sock" in script
    assert "systemctl poweroff" in script
    assert "sparkles-worker" in items["shutdown-script"]
    assert items["enable-guest-attributes"] == "TRUE"
    for text in (script, items["shutdown-script"]):
        checked = subprocess.run(["bash", "-n"], input=text.encode(), check=False)
        assert checked.returncode == 0, "the script is not valid bash"


@pytest.mark.parametrize(
    ("gce_status", "expected"),
    [
        ("PROVISIONING", NodeStatus.STAGING),
        ("STAGING", NodeStatus.STAGING),
        ("RUNNING", NodeStatus.RUNNING),
        ("REPAIRING", NodeStatus.STAGING),
        ("SUSPENDED", NodeStatus.FAILED),
        ("TERMINATED", NodeStatus.FAILED),
    ],
    ids=str.lower,
)
def test_refresh_maps_instance_status(
    fake: FakeCompute,
    provisioner: GCEProvisioner,
    make_launch: LaunchFactory,
    gce_status: str,
    expected: NodeStatus,
) -> None:
    (node,) = provisioner.add_nodes(make_launch(), 1, NodeClass.STANDARD)
    fake.set_status(node.id, gce_status)

    (refreshed,) = provisioner.refresh("c-test")

    assert refreshed.status is expected
    ended = expected is NodeStatus.FAILED
    assert (node.id not in fake.names()) is ended, "stopped instances are deleted"


@pytest.mark.slow
def test_worker_that_goes_idle_powers_off_and_its_node_completes(
    fake: FakeCompute, provisioner: GCEProvisioner, make_launch: LaunchFactory
) -> None:
    (node,) = provisioner.add_nodes(make_launch(linger_s=0.5), 1, NodeClass.STANDARD)

    wait_for(lambda: fake.instance(node.id)["status"] == "TERMINATED", 120)
    (refreshed,) = provisioner.refresh("c-test")

    assert refreshed.status is NodeStatus.COMPLETE
    assert fake.names() == []


def test_instance_that_vanished_makes_its_node_failed(
    fake: FakeCompute, provisioner: GCEProvisioner, make_launch: LaunchFactory
) -> None:
    (node,) = provisioner.add_nodes(make_launch(), 1, NodeClass.STANDARD)
    fake.preempt(node.id, graceful=False)  # gone, though not a spot node

    (refreshed,) = provisioner.refresh("c-test")

    assert refreshed.status is NodeStatus.FAILED
    assert refreshed.detail["reason"] == "instance gone"


@pytest.mark.slow
def test_delete_nodes_stops_the_worker_and_forgets_the_nodes(
    fake: FakeCompute,
    provisioner: GCEProvisioner,
    store: SQLiteStore,
    make_launch: LaunchFactory,
) -> None:
    nodes = provisioner.add_nodes(make_launch(), 2, NodeClass.STANDARD)
    workers = [fake.worker(node.id) for node in nodes]

    provisioner.delete_nodes(nodes)

    assert all(worker.poll() is not None for worker in workers)
    assert fake.names() == []
    assert store.list_nodes("c-test") == []


@pytest.mark.slow
def test_preempted_task_goes_back_to_pending_and_finishes_on_another_node(
    fake: FakeCompute,
    provisioner: GCEProvisioner,
    store: SQLiteStore,
    make_launch: LaunchFactory,
) -> None:
    job = store_job(
        store,
        "job-1",
        JobSpec(name="job-1", tasks=[TaskSpec(command=FIRST_ATTEMPT_HANGS)]),
    )
    launch = make_launch(cluster=job.cluster)
    (spot,) = provisioner.add_nodes(launch, 1, NodeClass.PREEMPTIBLE)
    wait_for(lambda: running_on(store, "job-1.1", spot.id), 120)

    fake.preempt(spot.id)

    task = task_of(store, "job-1.1")
    assert task.status is TaskStatus.PENDING
    assert task.history[-1].reason == "preempted"
    (failed,) = provisioner.refresh(job.cluster)
    assert failed.status is NodeStatus.FAILED
    assert failed.detail["reason"] == "preempted"

    (standard,) = provisioner.add_nodes(launch, 1, NodeClass.STANDARD)
    wait_for(lambda: task_of(store, "job-1.1").status is TaskStatus.COMPLETE, 120)
    task = task_of(store, "job-1.1")
    assert task.succeeded and task.owner == standard.id and task.attempt == 2


@pytest.mark.slow
def test_tasks_of_a_node_that_lost_power_are_reset_at_once(
    fake: FakeCompute,
    provisioner: GCEProvisioner,
    store: SQLiteStore,
    make_launch: LaunchFactory,
) -> None:
    job = store_job(
        store, "job-1", JobSpec(name="job-1", tasks=[TaskSpec(command="sleep 300")])
    )
    (spot,) = provisioner.add_nodes(
        make_launch(cluster=job.cluster, lease_s=600), 1, NodeClass.PREEMPTIBLE
    )
    wait_for(lambda: running_on(store, "job-1.1", spot.id), 120)

    fake.preempt(spot.id, graceful=False)
    provisioner.refresh(job.cluster)
    ResetOrphans(store, job.cluster, interval=1.0).poll(time.time())

    task = task_of(store, "job-1.1")
    assert task.status is TaskStatus.PENDING
    assert (task.history[-1].reason or "").startswith("its node is gone")


@pytest.mark.slow
def test_resize_spends_the_preemptible_budget_then_asks_for_standard_nodes(
    fake: FakeCompute,
    provisioner: GCEProvisioner,
    store: SQLiteStore,
    make_launch: LaunchFactory,
) -> None:
    spec = JobSpec(name="job-1", tasks=[TaskSpec(command="sleep 300")] * 2, nodes=2)
    job = store_job(store, "job-1", spec)
    resize = ResizeCluster(
        store,
        provisioner,
        make_launch(cluster=job.cluster),
        max_nodes=2,
        preemptible_scale=1,
        interval=1.0,
    )

    resize.poll(time.time())
    spots = fake.names()
    for name in spots:
        fake.preempt(name, graceful=False)
    resize.poll(time.time())

    classes = {
        name: fake.instance(name)["scheduling"]["provisioningModel"]
        for name in fake.names()
    }
    assert len(spots) == 2
    assert list(classes.values()) == ["STANDARD", "STANDARD"]
    nodes = {node.id: node for node in store.list_nodes(job.cluster)}
    assert {nodes[name].node_class for name in spots} == {NodeClass.PREEMPTIBLE}
    assert {nodes[name].node_class for name in classes} == {NodeClass.STANDARD}


def test_stop_cluster_deletes_every_labelled_instance(
    fake: FakeCompute,
    provisioner: GCEProvisioner,
    store: SQLiteStore,
    make_launch: LaunchFactory,
) -> None:
    provisioner.add_nodes(make_launch(), 1, NodeClass.STANDARD)
    provisioner.add_nodes(make_launch(cluster="c-other"), 1, NodeClass.STANDARD)

    provisioner.stop_cluster("c-test")

    assert [fake.instance(n)["labels"]["sparkles-cluster"] for n in fake.names()] == [
        "c-other"
    ]
    assert store.list_nodes("c-test") == []


def test_operations_still_running_are_waited_for_on_the_same_endpoint(
    fake: FakeCompute, provisioner: GCEProvisioner, make_launch: LaunchFactory
) -> None:
    fake.operations_done = False

    (node,) = provisioner.add_nodes(make_launch(), 1, NodeClass.STANDARD)

    waits = [c for c in fake.calls if c.path.endswith("/wait")]
    assert len(waits) == 1 and waits[0].method == "POST"
    assert fake.names() == [node.id]


def test_list_asks_for_the_cluster_label_in_one_call(
    fake: FakeCompute, provisioner: GCEProvisioner, make_launch: LaunchFactory
) -> None:
    provisioner.add_nodes(make_launch(), 2, NodeClass.STANDARD)
    before = len(fake.calls)

    provisioner.refresh("c-test")

    (call,) = fake.calls[before:]
    assert call.method == "GET" and call.path.endswith("/instances")
    assert call.query["filter"] == '(labels.sparkles-cluster = "c-test")'


def spot_resize(
    store: SQLiteStore, provisioner: GCEProvisioner, launch: WorkerLaunch
) -> ResizeCluster:
    return ResizeCluster(
        store, provisioner, launch, max_nodes=None, preemptible_scale=2, interval=30.0
    )


def two_task_job(store: SQLiteStore) -> Job:
    spec = JobSpec(name="job-1", tasks=[TaskSpec(command="sleep 300")] * 2, nodes=2)
    return store_job(store, "job-1", spec)


def test_resize_falls_back_to_standard_nodes_when_spot_capacity_runs_out(
    fake: FakeCompute,
    provisioner: GCEProvisioner,
    store: SQLiteStore,
    make_launch: LaunchFactory,
) -> None:
    job = two_task_job(store)
    for _ in range(2):
        fake.fail_next_insert("capacity")

    spot_resize(store, provisioner, make_launch(cluster=job.cluster)).poll(0.0)

    assert [model for _, model in fake.inserts()] == ["SPOT"] * 2 + ["STANDARD"] * 2
    assert len(fake.names()) == 2
    classes = {node.node_class for node in store.list_nodes(job.cluster)}
    assert classes == {NodeClass.STANDARD}


def test_resize_that_can_start_nothing_asks_again_one_interval_later(
    fake: FakeCompute,
    provisioner: GCEProvisioner,
    store: SQLiteStore,
    make_launch: LaunchFactory,
) -> None:
    job = two_task_job(store)
    for _ in range(4):
        fake.fail_next_insert("capacity")
    resize = spot_resize(store, provisioner, make_launch(cluster=job.cluster))

    resize.poll(1000.0)
    resize.poll(1010.0)
    assert len(fake.inserts()) == 4 and fake.names() == []

    resize.poll(1030.0)
    assert len(fake.names()) == 2
    assert [model for _, model in fake.inserts()[4:]] == ["SPOT", "SPOT"]


def test_resize_stops_at_a_refusal_that_waiting_cannot_cure(
    fake: FakeCompute,
    provisioner: GCEProvisioner,
    store: SQLiteStore,
    make_launch: LaunchFactory,
) -> None:
    job = two_task_job(store)
    fake.fail_next_insert("quota")

    with pytest.raises(ClusterError, match="quota of project 'test-project'"):
        spot_resize(store, provisioner, make_launch(cluster=job.cluster)).poll(0.0)


def test_nodes_show_running_after_the_next_refresh(
    fake: FakeCompute,
    provisioner: GCEProvisioner,
    store: SQLiteStore,
    make_launch: LaunchFactory,
) -> None:
    job = two_task_job(store)
    resize = spot_resize(store, provisioner, make_launch(cluster=job.cluster))

    interval = resize.poll(0.0)
    assert {n.status for n in store.list_nodes(job.cluster)} == {NodeStatus.STAGING}
    resize.poll(interval)

    assert interval <= 10.0
    assert {n.status for n in store.list_nodes(job.cluster)} == {NodeStatus.RUNNING}
