"""The built-in backends, registered through the same hooks as any plugin.

The Google ones act with the configured ``service_account_key``, else with
Application Default Credentials (see :mod:`sparkles_core.config.credentials`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from sparkles_core.hooks import hookimpl

if TYPE_CHECKING:
    from sparkles_cas.storage import ObjectStorage
    from sparkles_core.cluster.base import ClusterContext, Provisioner
    from sparkles_core.store.base import Store


def _sqlite(url: str) -> Store:
    from sparkles_core.store.sqlite import SQLiteStore

    return SQLiteStore.from_url(url)


def _datastore(url: str) -> Store:
    from sparkles_core.store.datastore import DatastoreStore

    return DatastoreStore.from_url(url)


def _file(url: str) -> ObjectStorage:
    from sparkles_cas.filestore import FileStorage

    return FileStorage(url)


def _gcs(url: str) -> ObjectStorage:
    from sparkles_cas.gcs import GCSStorage
    from sparkles_core.config.credentials import google_credentials

    return GCSStorage(url, google_credentials())


def _local(context: ClusterContext) -> Provisioner:
    from sparkles_core.cluster.local import LocalCluster

    return LocalCluster(context)


def _gce(context: ClusterContext) -> Provisioner:
    from sparkles_core.cluster.gce import GCEProvisioner

    return GCEProvisioner.from_context(context)


@hookimpl
def sparkles_store_backends() -> Mapping[str, Callable[[str], Store]]:
    """Offer the SQLite and Cloud Datastore stores."""
    return {"sqlite": _sqlite, "datastore": _datastore}


@hookimpl
def sparkles_storage_backends() -> Mapping[str, Callable[[str], ObjectStorage]]:
    """Offer local-folder storage and Cloud Storage."""
    return {"file": _file, "gs": _gcs}


@hookimpl
def sparkles_cluster_backends() -> Mapping[
    str, Callable[[ClusterContext], Provisioner]
]:
    """Offer worker processes on this machine and Compute Engine VMs."""
    return {"local": _local, "gce": _gce}
