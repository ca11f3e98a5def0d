"""The ``gce://`` cluster: Compute Engine VMs running the worker.

Each node is one instance (see :mod:`sparkles_core.cluster.gce_instance`)
whose start-up script runs ``sparkles-worker consume`` in the worker image
and powers the instance off when the worker exits. Like the local cluster,
the provisioner keeps a :class:`~sparkles_core.models.NodeReq` per node in
the store, named after its instance and recording its zone, and the worker
claims tasks under that name.

Nodes are spread over the zones of the cluster URL
(:mod:`sparkles_core.cluster.gce_zones`). When a zone has no capacity, or the
API is busy, the other zones take the nodes; when none can, fewer nodes
start than were asked for, and the monitor asks again later. Only a refusal
that waiting cannot cure (quota, permissions) raises.

:meth:`GCEProvisioner.refresh` lists the cluster's instances in one call and
brings the records up to date: PROVISIONING and STAGING are ``staging``,
RUNNING is ``running``; an instance that stopped (STOPPING, TERMINATED,
SUSPENDED) is ``complete`` if its worker exited 0, else ``failed``, and is
deleted; an instance that was preempted, or is gone, is ``failed``. A failed
or complete node's tasks go back to pending at the next orphan check,
without waiting for their leases to run out. While the API is busy or
failing (the listing, a zone's preemptions, a node's exit status), the
records it could not bring up to date stay as they were until a later call.

Where the settings come from:

- the worker image: ``SPARKLES_WORKER_IMAGE``, else the config key
  ``sparklesworker_image``, else the image ``sparkles setup`` builds;
- the service account: the MachineSpec's, else the ``client_email`` of the
  config's ``service_account_key`` file, else ``sparkles-worker@PROJECT``,
  the one ``sparkles setup`` creates;
- the credentials of the API calls: that key's, else Application Default
  Credentials;
- the API endpoint: ``SPARKLES_COMPUTE_ENDPOINT`` (see
  :mod:`sparkles_core.cluster.gce_api`).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterable
from typing import Any

from sparkles_core.cluster.base import ClusterContext, Provisioner, WorkerLaunch
from sparkles_core.cluster.gce_api import ComputeAPI, InstanceState
from sparkles_core.cluster.gce_errors import ComputeError, Verdict
from sparkles_core.cluster.gce_instance import (
    LABEL_CLUSTER,
    NodePlan,
    instance_body,
    instance_name,
    label_value,
)
from sparkles_core.cluster.gce_zones import Placement, ZoneTurns, parse_cluster_url
from sparkles_core.cluster.startup import default_worker_image
from sparkles_core.config.credentials import read_key
from sparkles_core.errors import ClusterError
from sparkles_core.models import NodeClass, NodeReq, NodeStatus
from sparkles_core.store.base import Store

__all__ = ["WORKER_IMAGE_ENV", "GCEProvisioner", "parse_cluster_url"]

logger = logging.getLogger(__name__)

WORKER_IMAGE_ENV = "SPARKLES_WORKER_IMAGE"
# The service account ``sparkles setup`` creates for the nodes.
WORKER_ACCOUNT = "sparkles-worker"
_LIVE = {
    "PROVISIONING": NodeStatus.STAGING,
    "STAGING": NodeStatus.STAGING,
    "REPAIRING": NodeStatus.STAGING,
    "RUNNING": NodeStatus.RUNNING,
}
_ENDED = frozenset({"STOPPING", "STOPPED", "TERMINATED", "SUSPENDING", "SUSPENDED"})


class GCEProvisioner(Provisioner):
    """Start, watch and delete the Compute Engine instances of clusters."""

    def __init__(
        self,
        store: Store,
        plan: NodePlan,
        cluster_url: str,
        credentials: Any | None = None,
    ) -> None:
        self._store, self._plan = store, plan
        self._placement = parse_cluster_url(cluster_url)
        self._api = ComputeAPI(self._placement.project, cluster_url, credentials)
        self._zones = ZoneTurns(self._placement, self._api.zones_of)
        self._deleting: set[str] = set()

    @property
    def plan(self) -> NodePlan:
        """Return what this provisioner's nodes run, and as whom."""
        return self._plan

    @property
    def placement(self) -> Placement:
        """Return the project and zones this provisioner puts nodes in."""
        return self._placement

    @classmethod
    def from_context(cls, context: ClusterContext) -> GCEProvisioner:
        """Return the provisioner for the context's ``gce://`` URL."""
        place = parse_cluster_url(context.cluster_url)
        image = os.environ.get(WORKER_IMAGE_ENV, "").strip() or context.worker_image
        path = context.service_account_key
        key = None if path is None else read_key(path)
        plan = NodePlan(
            worker_image=image or default_worker_image(place.project, place.region),
            service_account=key.email
            if key
            else f"{WORKER_ACCOUNT}@{place.project}.iam.gserviceaccount.com",
        )
        credentials = None if key is None else key.credentials
        return cls(context.store, plan, context.cluster_url, credentials)

    def add_nodes(
        self, launch: WorkerLaunch, count: int, node_class: NodeClass
    ) -> list[NodeReq]:
        """Create up to ``count`` instances; return the records of those created.

        Fewer start when no zone has room for more right now; a refusal that
        retrying cannot cure raises ClusterError.
        """
        nodes: list[NodeReq] = []
        short: set[str] = set()
        while len(nodes) < count:
            zones = self._spread(launch.cluster_id, count - len(nodes), short)
            if not zones:
                break
            created, refusals = self._insert(launch, node_class, zones)
            nodes += created
            short |= self._weigh(launch.cluster_id, refusals)
        if len(nodes) < count:
            logger.warning(
                "Cluster %s: started %d of %d %s nodes; no zone can take more "
                "now, asking again later",
                launch.cluster_id,
                len(nodes),
                count,
                node_class.value,
            )
        return nodes

    def _spread(self, cluster_id: str, count: int, short: set[str]) -> list[str]:
        """Return a zone per node; none while the region's zones cannot be listed."""
        try:
            return self._zones.spread(count, skip=short)
        except ComputeError as exc:
            exc.cluster_id = cluster_id
            if exc.verdict is Verdict.FATAL:
                raise
            logger.warning("Cluster %s: %s", cluster_id, exc)
            return []  # as in a stock-out: no node this round, more later

    def _insert(
        self, launch: WorkerLaunch, node_class: NodeClass, zones: list[str]
    ) -> tuple[list[NodeReq], list[ComputeError]]:
        """Create one instance in each of ``zones``; return them and the refusals."""
        started, refusals, refused = [], [], set()
        for zone in zones:
            if zone in refused:
                continue  # the same refusal would meet the zone's other inserts
            name = instance_name(launch.cluster_id)
            body = instance_body(name, launch, node_class, self._plan, zone)
            try:
                started.append((name, zone, self._api.insert(zone, body)))
            except ComputeError as exc:
                refusals.append(exc)
                refused.add(zone)
                if exc.verdict is Verdict.FATAL:
                    break
        nodes = []
        for name, zone, op in started:
            try:
                self._api.wait(op, f"Creating instance {name!r}")
            except ComputeError as exc:
                refusals.append(exc)
                continue
            nodes.append(self._record(name, zone, launch, node_class))
        return nodes, refusals

    def _weigh(self, cluster_id: str, refusals: list[ComputeError]) -> set[str]:
        """Return the zones that are short; raise the first fatal refusal."""
        short = set()
        for exc in refusals:
            exc.cluster_id = cluster_id
            if exc.verdict is Verdict.FATAL:
                raise exc
            if exc.zone is None:
                raise exc  # no zone to step around: a failure of the service
            logger.warning("Cluster %s: %s", cluster_id, exc)
            if exc.verdict is Verdict.UNSUITABLE:
                self._zones.drop(exc.zone)
                if not self._zones.usable():
                    raise exc
            short.add(exc.zone)
        return short

    def _record(
        self, name: str, zone: str, launch: WorkerLaunch, cls: NodeClass
    ) -> NodeReq:
        now = time.time()
        node = NodeReq(
            id=name,
            cluster=launch.cluster_id,
            node_class=cls,
            # Its insert is done: the instance exists and is booting.
            status=NodeStatus.STAGING,
            instance_name=name,
            job_id=launch.job_id,
            created=now,
            updated=now,
            detail={"project": self._placement.project, "zone": zone},
        )
        self._store.put_node(node)
        logger.info("Node %s: %s instance created in %s", name, cls.value, zone)
        return node

    def refresh(self, cluster_id: str) -> list[NodeReq]:
        """Return the cluster's nodes, updated from one listing of instances.

        While the API is busy or failing, the records (all of them, or those
        of the nodes whose state could not be read) are returned as they
        were, and updated at a later call.
        """
        nodes = self._store.list_nodes(cluster_id)
        try:
            found = {item.name: item for item in self._list(cluster_id)}
        except ComputeError as exc:
            if exc.verdict is Verdict.FATAL:
                raise
            logger.warning("Cluster %s: nodes not refreshed: %s", cluster_id, exc)
            return nodes
        preempted, unread = _Preemptions(self._api), set[str]()
        for index, node in enumerate(nodes):
            if not node.status.alive:
                continue
            try:
                nodes[index] = self._update(node, found.get(node.id), preempted)
            except ComputeError as exc:
                if exc.verdict is Verdict.FATAL:
                    raise
                logger.warning("Node %s: not refreshed: %s", node.id, exc)
                unread.add(node.id)
        # An instance whose end was not read stays, to be read next time.
        self._delete_ended(i for i in found.values() if i.name not in unread)
        return nodes

    def _update(
        self, node: NodeReq, instance: InstanceState | None, preempted: _Preemptions
    ) -> NodeReq:
        """Store and return the node with the status its instance shows."""
        status, reason = self._judge(node, instance, preempted)
        if status is node.status:
            return node
        detail = {**node.detail, **({"reason": reason} if reason else {})}
        node = node.model_copy(
            update={"status": status, "updated": time.time(), "detail": detail}
        )
        self._store.put_node(node)
        _log_change(node, reason)
        return node

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
        zone = _zone_of(node)
        if instance is None:
            spot = node.node_class is NodeClass.PREEMPTIBLE
            gone = spot and zone is not None and preempted.has(zone, node.id)
            return NodeStatus.FAILED, "preempted" if gone else "instance gone"
        if instance.status not in _ENDED:
            return _LIVE.get(instance.status, NodeStatus.STAGING), None
        if instance.spot and preempted.has(instance.zone, node.id):
            return NodeStatus.FAILED, "preempted"
        code = self._api.exit_status(instance.zone, node.id)
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
                self._api.delete(item.zone, item.name)
            except ClusterError as exc:
                logger.warning("Node %s: not deleted yet: %s", item.name, exc)
                continue
            self._deleting.add(item.name)
            logger.info("Node %s: %s; deleting it", item.name, item.status.lower())

    def delete_nodes(self, nodes: list[NodeReq]) -> None:
        """Delete the nodes' instances (their workers hand tasks back first)."""
        where = [
            (zone, node.instance_name or node.id)
            for node in nodes
            if (zone := _zone_of(node)) is not None
        ]
        error = self._delete_instances(where)
        self._store.delete_nodes(node.id for node in nodes)
        if error is not None:
            raise error

    def stop_cluster(self, cluster_id: str) -> None:
        """Delete every instance labelled with the cluster, and its records."""
        where = [(item.zone, item.name) for item in self._list(cluster_id)]
        error = self._delete_instances(where)
        self._store.delete_nodes(node.id for node in self._store.list_nodes(cluster_id))
        if error is not None:
            error.cluster_id = cluster_id
            raise error

    def _delete_instances(self, where: list[tuple[str, str]]) -> ClusterError | None:
        """Delete instances, waiting for each; return the first failure."""
        started, error = [], None
        for zone, name in where:
            try:
                op = self._api.delete(zone, name)
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
    """The preempted instances of each zone, listed on first need only."""

    def __init__(self, api: ComputeAPI) -> None:
        self._api = api
        self._names: dict[str, set[str]] = {}
        # A zone whose listing failed is not asked again in the same round:
        # a busy API is not helped by one more call per node.
        self._errors: dict[str, ComputeError] = {}

    def has(self, zone: str, name: str) -> bool:
        """Return True if the instance ``name`` of ``zone`` was preempted."""
        if zone in self._errors:
            raise self._errors[zone]
        if zone not in self._names:
            try:
                self._names[zone] = self._api.preempted(zone)
            except ComputeError as exc:
                self._errors[zone] = exc
                raise
        return name in self._names[zone]


def _zone_of(node: NodeReq) -> str | None:
    zone = node.detail.get("zone")
    return zone if isinstance(zone, str) else None


def _log_change(node: NodeReq, reason: str | None) -> None:
    if node.status is NodeStatus.FAILED:
        logger.warning("Node %s: failed (%s)", node.id, reason)
    else:
        logger.info("Node %s: %s", node.id, node.status.value)
