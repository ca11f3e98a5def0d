"""The ``gce://PROJECT/ZONE`` cluster: Compute Engine VMs running the worker.

Each node is one instance (see :mod:`sparkles_core.cluster.gce_instance`)
whose start-up script runs ``sparkles-worker consume`` in the worker image
and powers the instance off when the worker exits. Like the local cluster,
the provisioner keeps a :class:`~sparkles_core.models.NodeReq` per node in
the store, named after its instance, and the worker claims tasks under that
name.

:meth:`GCEProvisioner.refresh` lists the cluster's instances in one call and
brings the records up to date: PROVISIONING and STAGING are ``staging``,
RUNNING is ``running``; an instance that stopped (STOPPING, TERMINATED,
SUSPENDED) is ``complete`` if its worker exited 0, else ``failed``, and is
deleted; an instance that was preempted, or is gone, is ``failed``. A failed
or complete node's tasks go back to pending at the next orphan check,
without waiting for their leases to run out.

Where the settings come from:

- the worker image: ``SPARKLES_WORKER_IMAGE``, else the config key
  ``sparklesworker_image``, else the image ``sparkles setup`` builds;
- the service account: the MachineSpec's, else the ``client_email`` of the
  config's ``service_account_key`` file, else ``sparkles-worker@PROJECT``,
  the one ``sparkles setup`` creates;
- the API endpoint: ``SPARKLES_COMPUTE_ENDPOINT`` (see
  :mod:`sparkles_core.cluster.gce_api`).
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Iterable
from pathlib import Path

from sparkles_core.cluster.base import ClusterContext, Provisioner, WorkerLaunch
from sparkles_core.cluster.gce_api import ComputeAPI, InstanceState
from sparkles_core.cluster.gce_instance import (
    LABEL_CLUSTER,
    NodePlan,
    instance_body,
    instance_name,
    label_value,
)
from sparkles_core.cluster.startup import default_worker_image
from sparkles_core.errors import BackendError, ClusterError
from sparkles_core.models import NodeClass, NodeReq, NodeStatus
from sparkles_core.store.base import Store

__all__ = ["WORKER_IMAGE_ENV", "GCEProvisioner", "parse_cluster_url"]

logger = logging.getLogger(__name__)

WORKER_IMAGE_ENV = "SPARKLES_WORKER_IMAGE"
# The service account ``sparkles setup`` creates for the nodes.
WORKER_ACCOUNT = "sparkles-worker"
_URL = re.compile(r"gce://(?P<project>[a-z][-a-z0-9.:]*)/(?P<zone>[a-z0-9-]+-[a-z])")
_LIVE = {
    "PROVISIONING": NodeStatus.STAGING,
    "STAGING": NodeStatus.STAGING,
    "REPAIRING": NodeStatus.STAGING,
    "RUNNING": NodeStatus.RUNNING,
}
_ENDED = frozenset({"STOPPING", "STOPPED", "TERMINATED", "SUSPENDING", "SUSPENDED"})


def parse_cluster_url(url: str) -> tuple[str, str]:
    """Return the project and zone of ``gce://PROJECT/ZONE``."""
    match = _URL.fullmatch(url)
    if match is None:
        raise BackendError(
            f"Bad cluster URL {url!r}; expected gce://PROJECT/ZONE, for example "
            "gce://my-project/us-central1-a.",
            url,
        )
    return match["project"], match["zone"]


class GCEProvisioner(Provisioner):
    """Start, watch and delete the Compute Engine instances of clusters."""

    def __init__(self, store: Store, plan: NodePlan, cluster_url: str) -> None:
        self._store, self._plan = store, plan
        self._api = ComputeAPI(plan.project, plan.zone, cluster_url)
        self._deleting: set[str] = set()

    @property
    def plan(self) -> NodePlan:
        """Return where this provisioner puts nodes and what they run."""
        return self._plan

    @classmethod
    def from_context(cls, context: ClusterContext) -> GCEProvisioner:
        """Return the provisioner for the context's ``gce://`` URL."""
        project, zone = parse_cluster_url(context.cluster_url)
        image = os.environ.get(WORKER_IMAGE_ENV, "").strip() or context.worker_image
        key_file = context.service_account_key
        plan = NodePlan(
            project=project,
            zone=zone,
            worker_image=image or default_worker_image(project, zone.rsplit("-", 1)[0]),
            service_account=_key_file_email(key_file)
            or f"{WORKER_ACCOUNT}@{project}.iam.gserviceaccount.com",
        )
        return cls(context.store, plan, context.cluster_url)

    def add_nodes(
        self, launch: WorkerLaunch, count: int, node_class: NodeClass
    ) -> list[NodeReq]:
        """Create ``count`` instances; return the records of those created."""
        started, error = [], None
        for _ in range(count):
            name = instance_name(launch.cluster_id)
            try:
                op = self._api.insert(
                    instance_body(name, launch, node_class, self._plan)
                )
            except ClusterError as exc:
                error = exc  # the same refusal would meet every other insert
                break
            started.append((name, op))
        nodes = []
        for name, op in started:
            try:
                self._api.wait(op, f"Creating instance {name!r}")
            except ClusterError as exc:
                error = error or exc
                continue
            nodes.append(self._record(name, launch, node_class))
        if error is not None:
            error.cluster_id = launch.cluster_id
            raise error
        return nodes

    def _record(self, name: str, launch: WorkerLaunch, cls: NodeClass) -> NodeReq:
        now = time.time()
        node = NodeReq(
            id=name,
            cluster=launch.cluster_id,
            node_class=cls,
            status=NodeStatus.SUBMITTED,
            instance_name=name,
            job_id=launch.job_id,
            created=now,
            updated=now,
            detail={"project": self._plan.project, "zone": self._plan.zone},
        )
        self._store.put_node(node)
        logger.info("Node %s: %s instance requested", name, cls.value)
        return node

    def refresh(self, cluster_id: str) -> list[NodeReq]:
        """Return the cluster's nodes, updated from one listing of instances."""
        nodes = self._store.list_nodes(cluster_id)
        found = {item.name: item for item in self._list(cluster_id)}
        preempted = _Preemptions(self._api)
        for index, node in enumerate(nodes):
            if not node.status.alive:
                continue
            status, reason = self._judge(node, found.get(node.id), preempted)
            if status is node.status:
                continue
            detail = {**node.detail, **({"reason": reason} if reason else {})}
            node = node.model_copy(
                update={"status": status, "updated": time.time(), "detail": detail}
            )
            self._store.put_node(node)
            nodes[index] = node
            _log_change(node, reason)
        self._delete_ended(found.values())
        return nodes

    def _list(self, cluster_id: str) -> list[InstanceState]:
        items = self._api.list_instances({LABEL_CLUSTER: label_value(cluster_id)})
        self._deleting &= {item.name for item in items}
        return items

    def _judge(
        self,
        node: NodeReq,
        instance: InstanceState | None,
        preempted: _Preemptions,
    ) -> tuple[NodeStatus, str | None]:
        """Return the node's status, and why it ended if it did."""
        if instance is None:
            spot = node.node_class is NodeClass.PREEMPTIBLE
            return NodeStatus.FAILED, (
                "preempted" if spot and node.id in preempted else "instance gone"
            )
        if instance.status not in _ENDED:
            return _LIVE.get(instance.status, NodeStatus.STAGING), None
        if instance.spot and node.id in preempted:
            return NodeStatus.FAILED, "preempted"
        code = self._api.exit_status(node.id)
        if code == "0":
            return NodeStatus.COMPLETE, None
        if code is None:
            return (
                NodeStatus.FAILED,
                f"{instance.status.lower()} before its worker ended",
            )
        return NodeStatus.FAILED, f"start-up or worker exited with status {code}"

    def _delete_ended(self, instances: Iterable[InstanceState]) -> None:
        """Start deleting stopped instances; a failure is retried next time."""
        for item in instances:
            if item.status not in _ENDED or item.name in self._deleting:
                continue
            try:
                self._api.delete(item.name)
            except ClusterError as exc:
                logger.warning("Node %s: not deleted yet: %s", item.name, exc)
                continue
            self._deleting.add(item.name)
            logger.info("Node %s: %s; deleting it", item.name, item.status.lower())

    def delete_nodes(self, nodes: list[NodeReq]) -> None:
        """Delete the nodes' instances (their workers hand tasks back first)."""
        names = [node.instance_name or node.id for node in nodes]
        error = self._delete_instances(names)
        self._store.delete_nodes(node.id for node in nodes)
        if error is not None:
            raise error

    def stop_cluster(self, cluster_id: str) -> None:
        """Delete every instance labelled with the cluster, and its records."""
        names = [item.name for item in self._list(cluster_id)]
        error = self._delete_instances(names)
        self._store.delete_nodes(node.id for node in self._store.list_nodes(cluster_id))
        if error is not None:
            error.cluster_id = cluster_id
            raise error

    def _delete_instances(self, names: list[str]) -> ClusterError | None:
        """Delete instances, waiting for each; return the first failure."""
        started, error = [], None
        for name in names:
            try:
                op = self._api.delete(name)
            except ClusterError as exc:
                error = error or exc
                continue
            if op is not None:
                started.append((name, op))
        for name, op in started:
            try:
                self._api.wait(op, f"Deleting instance {name!r}")
                logger.info("Node %s: deleted", name)
            except ClusterError as exc:
                error = error or exc
        return error


class _Preemptions:
    """The zone's preempted instances, listed on first need only."""

    def __init__(self, api: ComputeAPI) -> None:
        self._api = api
        self._names: set[str] | None = None

    def __contains__(self, name: object) -> bool:
        if self._names is None:
            self._names = self._api.preempted()
        return name in self._names


def _log_change(node: NodeReq, reason: str | None) -> None:
    if node.status is NodeStatus.FAILED:
        logger.warning("Node %s: failed (%s)", node.id, reason)
    else:
        logger.info("Node %s: %s", node.id, node.status.value)


def _key_file_email(path: Path | None) -> str | None:
    """Return the service account a key file belongs to (never its secret)."""
    if path is None:
        return None
    try:
        data = json.loads(path.expanduser().read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        logger.warning(
            "Config key service_account_key: cannot read %s (%s); nodes run "
            "as the %s service account instead",
            path,
            type(exc).__name__,
            WORKER_ACCOUNT,
        )
        return None
    email = data.get("client_email") if isinstance(data, dict) else None
    return email if isinstance(email, str) else None
