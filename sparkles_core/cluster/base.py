"""The provisioner contract: start, inspect and stop the nodes of a cluster.

A provisioner keeps a :class:`~sparkles_core.models.NodeReq` in the store for
each node it starts, so that any process (a monitor, ``sparkles status``)
can see the cluster, and so a task held by a node that is gone can be handed
back at once rather than at lease expiry.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sparkles_core.models import JobSpec, MachineSpec, NodeClass, NodeReq
from sparkles_core.store.base import Store

if TYPE_CHECKING:
    from sparkles_core.config import Config

__all__ = ["ClusterContext", "Provisioner", "WorkerLaunch"]


@dataclass(frozen=True)
class ClusterContext:
    """What a provisioner is built from."""

    cluster_url: str
    store: Store
    home: Path
    worker_image: str | None = None
    service_account_key: Path | None = None

    @classmethod
    def from_config(cls, config: Config, store: Store) -> ClusterContext:
        """Return the context for the configured cluster."""
        return cls(
            config.cluster_url,
            store,
            config.home,
            config.sparklesworker_image,
            config.service_account_key,
        )


@dataclass(frozen=True)
class WorkerLaunch:
    """Everything a node's worker needs to start consuming a cluster's tasks."""

    cluster_id: str
    store_url: str
    storage_url: str
    machine: MachineSpec
    image: str | None = None
    job_id: str | None = None
    linger_s: float = 10.0
    lease_s: float = 60.0
    log_interval_s: float = 5.0
    cas_url: str | None = None

    def worker_args(self, node_id: str) -> list[str]:
        """Return the ``sparkles-worker`` arguments, less folders, for a node."""
        return [
            "consume",
            f"--store={self.store_url}",
            f"--storage={self.storage_url}",
            f"--cluster={self.cluster_id}",
            f"--node-id={node_id}",
            f"--linger={self.linger_s:g}",
            f"--lease={self.lease_s:g}",
            f"--log-interval={self.log_interval_s:g}",
            *([f"--cas={self.cas_url}"] if self.cas_url else []),
        ]


class Provisioner(abc.ABC):
    """Nodes of clusters on one kind of infrastructure."""

    def check_job(self, spec: JobSpec) -> None:  # noqa: B027 - most run any job
        """Raise ClusterError if this cluster cannot run ``spec`` as asked.

        Every front end's submission calls this before the job is stored,
        so a refusal leaves nothing behind. The message says what to change.
        """

    @abc.abstractmethod
    def add_nodes(
        self, launch: WorkerLaunch, count: int, node_class: NodeClass
    ) -> list[NodeReq]:
        """Request ``count`` more nodes for the cluster; return their records."""

    @abc.abstractmethod
    def refresh(self, cluster_id: str) -> list[NodeReq]:
        """Return the cluster's nodes with their status brought up to date."""

    @abc.abstractmethod
    def delete_nodes(self, nodes: list[NodeReq]) -> None:
        """Stop these nodes (a worker mid-task hands its task back first)."""

    def stop_cluster(self, cluster_id: str) -> None:
        """Stop every node of the cluster and forget them."""
        self.delete_nodes(self.refresh(cluster_id))

    def close(self) -> None:  # noqa: B027 - most provisioners hold nothing
        """Release what the provisioner holds; its nodes keep running."""
