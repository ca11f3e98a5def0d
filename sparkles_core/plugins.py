"""The plugin manager, and opening backends by URL through it."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, TypeVar

import pluggy

from sparkles_core import hooks
from sparkles_core.errors import BackendError

if TYPE_CHECKING:
    from sparkles_cas.storage import ObjectStorage
    from sparkles_core.cluster.base import ClusterContext, Provisioner
    from sparkles_core.store.base import Store

__all__ = ["open_cluster", "open_storage", "open_store", "plugin_manager"]

logger = logging.getLogger(__name__)
T = TypeVar("T")


@functools.cache
def plugin_manager() -> pluggy.PluginManager:
    """Return the process-wide plugin manager with every plugin registered."""
    from sparkles_core import backends

    manager = pluggy.PluginManager(hooks.PROJECT)
    for specs in (hooks.BackendSpecs, hooks.SubmitSpecs, hooks.WorkerSpecs):
        manager.add_hookspecs(specs)
    # The name matches the entry point's, so loading entry points skips it.
    manager.register(backends, name="builtin_backends")
    manager.load_setuptools_entrypoints(hooks.PROJECT)
    return manager


def _factories(results: list[Mapping[str, T]]) -> dict[str, T]:
    merged: dict[str, T] = {}
    # pluggy calls the last registered plugin first; let later plugins win.
    for mapping in reversed(results):
        merged.update(mapping)
    return merged


def _pick(kind: str, url: str, factories: Mapping[str, T]) -> T:
    scheme = url.partition("://")[0]
    if scheme not in factories:
        known = ", ".join(sorted(factories))
        raise BackendError(
            f"No {kind} backend for {url!r}; known schemes: {known}. "
            "A cloud scheme may need: pip install "
            "'snakemake-executor-plugin-sparkles[gcp]'.",
            url,
        )
    return factories[scheme]


def open_store(url: str) -> Store:
    """Return the store at ``url`` (``sqlite:///...``, ``datastore://...``)."""
    hook = plugin_manager().hook
    factories: dict[str, Callable[[str], Store]] = _factories(
        hook.sparkles_store_backends()
    )
    return _pick("store", url, factories)(url)


def open_storage(url: str) -> ObjectStorage:
    """Return the object storage at ``url`` (``file:///...``, ``gs://...``)."""
    hook = plugin_manager().hook
    factories: dict[str, Callable[[str], ObjectStorage]] = _factories(
        hook.sparkles_storage_backends()
    )
    return _pick("storage", url, factories)(url)


def open_cluster(context: ClusterContext) -> Provisioner:
    """Return the provisioner for the context's cluster URL (``local``, ...)."""
    hook = plugin_manager().hook
    factories: dict[str, Callable[[ClusterContext], Provisioner]] = _factories(
        hook.sparkles_cluster_backends()
    )
    return _pick("cluster", context.cluster_url, factories)(context)
