"""The Compute Engine instance a node is made of, as the REST API's JSON.

Each node is one instance named ``sparkles-<cluster>-<random>`` and labelled
with its cluster, its job and its node class, so the nodes of a cluster are
listed with one filtered call. Besides the start-up and shutdown scripts
(:mod:`sparkles_core.cluster.startup`), its metadata carries the worker's
arguments as JSON under ``sparkles-worker-args``, for tools (and the tests'
fake Compute API) that start the worker without running the script.
"""

from __future__ import annotations

import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sparkles_core.cluster.base import WorkerLaunch
from sparkles_core.cluster.startup import (
    DiskMount,
    NodeBoot,
    node_worker_args,
    shutdown_script,
    startup_script,
)
from sparkles_core.models import DataDisk, MachineSpec, NodeClass

__all__ = [
    "LABEL_CLUSTER",
    "LABEL_JOB",
    "LABEL_NODE_CLASS",
    "WORKER_ARGS_KEY",
    "NodePlan",
    "instance_body",
    "instance_name",
    "label_value",
]

LABEL_CLUSTER = "sparkles-cluster"
LABEL_JOB = "sparkles-job"
LABEL_NODE_CLASS = "sparkles-node-class"
WORKER_ARGS_KEY = "sparkles-worker-args"

COS_IMAGE = "projects/cos-cloud/global/images/family/cos-stable"
DEBIAN_IMAGE = "projects/debian-cloud/global/images/family/debian-12"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
DEFAULT_WORK_ROOT = "/mnt/disks/mount_1"
# Machine families that take only Hyperdisk, not Persistent Disk.
_HYPERDISK_FAMILIES = ("c4", "n4", "m4", "x4", "a4", "h4d")
_LABEL_UNSAFE = re.compile(r"[^a-z0-9_-]")


@dataclass(frozen=True)
class NodePlan:
    """What nodes run and as whom, beyond what the launch says."""

    worker_image: str
    service_account: str = "default"
    network: str = "global/networks/default"


def instance_name(cluster_id: str) -> str:
    """Return a fresh instance name for a node of the cluster."""
    base = label_value(f"sparkles-{cluster_id}")[:54].rstrip("-_")
    return f"{base.replace('_', '-')}-{secrets.token_hex(4)}"


def label_value(text: str) -> str:
    """Return ``text`` as a valid label value (lowercase, at most 63 chars)."""
    return _LABEL_UNSAFE.sub("-", text.lower())[:63]


def instance_body(
    name: str, launch: WorkerLaunch, node_class: NodeClass, plan: NodePlan, zone: str
) -> dict[str, Any]:
    """Return the instance resource that starts one node of the cluster in ``zone``."""
    machine = launch.machine
    body: dict[str, Any] = {
        "name": name,
        "machineType": f"zones/{zone}/machineTypes/{machine.machine_type}",
        "labels": _labels(launch, node_class),
        "disks": _disks(machine, zone),
        "networkInterfaces": [
            {
                "network": plan.network,
                # Outbound only: the node pulls images and reaches the APIs.
                "accessConfigs": [{"type": "ONE_TO_ONE_NAT", "name": "External NAT"}],
            }
        ],
        "serviceAccounts": [
            {
                "email": machine.service_account or plan.service_account,
                "scopes": [CLOUD_PLATFORM_SCOPE],
            }
        ],
        "scheduling": _scheduling(machine, node_class),
        "metadata": {"items": _metadata(name, launch, plan)},
    }
    if machine.gpus:
        body["guestAccelerators"] = [
            {
                "acceleratorType": f"zones/{zone}/acceleratorTypes/{gpu.type}",
                "acceleratorCount": gpu.count,
            }
            for gpu in machine.gpus
        ]
    return body


def _labels(launch: WorkerLaunch, node_class: NodeClass) -> dict[str, str]:
    labels = {
        LABEL_CLUSTER: label_value(launch.cluster_id),
        LABEL_NODE_CLASS: node_class.value,
    }
    if launch.job_id:
        labels[LABEL_JOB] = label_value(launch.job_id)
    return labels


def _scheduling(machine: MachineSpec, node_class: NodeClass) -> dict[str, Any]:
    if node_class is NodeClass.PREEMPTIBLE:
        # A preempted node is deleted, not kept stopped: nothing on it is
        # worth keeping, and a stopped node still pays for its disks.
        return {
            "provisioningModel": "SPOT",
            "instanceTerminationAction": "DELETE",
            "onHostMaintenance": "TERMINATE",
            "automaticRestart": False,
        }
    return {
        "provisioningModel": "STANDARD",
        # GPUs cannot move with a live migration.
        "onHostMaintenance": "TERMINATE" if machine.gpus else "MIGRATE",
        "automaticRestart": True,
    }


def _disks(machine: MachineSpec, zone: str) -> list[dict[str, Any]]:
    boot = {
        "boot": True,
        "autoDelete": True,
        "initializeParams": {
            "sourceImage": DEBIAN_IMAGE if machine.gpus else COS_IMAGE,
            "diskSizeGb": str(machine.boot_disk_gb),
            "diskType": _disk_type(
                zone, machine.boot_disk_type or _default_type(machine)
            ),
        },
    }
    data = [
        _data_disk(disk, index, machine, zone)
        for index, disk in enumerate(machine.data_disks, start=1)
    ]
    return [boot, *data]


def _data_disk(
    disk: DataDisk, index: int, machine: MachineSpec, zone: str
) -> dict[str, Any]:
    kind = disk.type or _default_type(machine)
    if kind == "local-ssd":
        # A local SSD has a fixed size and no device name of our choosing.
        return {
            "type": "SCRATCH",
            "interface": "NVME",
            "autoDelete": True,
            "initializeParams": {"diskType": _disk_type(zone, kind)},
        }
    return {
        "deviceName": f"sparkles-data-{index}",
        "autoDelete": True,
        "initializeParams": {
            "diskSizeGb": str(disk.size_gb),
            "diskType": _disk_type(zone, kind),
        },
    }


def _disk_mounts(machine: MachineSpec) -> tuple[DiskMount, ...]:
    mounts, local_ssds = [], 0
    for index, disk in enumerate(machine.data_disks, start=1):
        if (disk.type or _default_type(machine)) == "local-ssd":
            device = f"/dev/disk/by-id/google-local-nvme-ssd-{local_ssds}"
            local_ssds += 1
        else:
            device = f"/dev/disk/by-id/google-sparkles-data-{index}"
        mounts.append(DiskMount(device, disk.mount_path))
    return tuple(mounts)


def _default_type(machine: MachineSpec) -> str:
    family = machine.machine_type.split("-", 1)[0]
    return "hyperdisk-balanced" if family in _HYPERDISK_FAMILIES else "pd-balanced"


def _disk_type(zone: str, kind: str) -> str:
    return f"zones/{zone}/diskTypes/{kind}"


def _metadata(name: str, launch: WorkerLaunch, plan: NodePlan) -> list[dict[str, str]]:
    work_root = launch.machine.work_folder or DEFAULT_WORK_ROOT
    args = node_worker_args(launch, name, work_root)
    boot = NodeBoot(
        worker_image=plan.worker_image,
        worker_args=tuple(args),
        work_root=work_root,
        task_image=launch.image,
        disks=_disk_mounts(launch.machine),
        gpus=bool(launch.machine.gpus),
    )
    return [
        {"key": "startup-script", "value": startup_script(boot)},
        {"key": "shutdown-script", "value": shutdown_script()},
        {"key": "enable-guest-attributes", "value": "TRUE"},
        {"key": WORKER_ARGS_KEY, "value": json.dumps(args)},
    ]
