"""Turn the ``--sparkles-*`` options into the engine's configuration.

The options sit on top of the usual sources, so ``sparkles status`` run in
the same folder finds the same store: a store, storage or cluster URL given
as an option wins over ``SPARKLES_STORE`` and friends, which win over the
config file; the node options become ``-o``-style overrides of the file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_sparkles.settings import ExecutorSettings
from sparkles_core.config import Config, load_config
from sparkles_core.errors import SparklesError

__all__ = ["load_plugin_config"]

_ROLE_VARIABLES = {
    "store": "SPARKLES_STORE",
    "storage": "SPARKLES_STORAGE",
    "cluster": "SPARKLES_CLUSTER",
}


def load_plugin_config(settings: ExecutorSettings) -> Config:
    """Return the configuration the options select, or raise WorkflowError."""
    try:
        return load_config(
            settings.config_file,
            overrides=_overrides(settings),
            environ=_environ(settings, os.environ),
        )
    except SparklesError as exc:
        raise WorkflowError(f"Sparkles configuration: {exc}") from exc


def _overrides(settings: ExecutorSettings) -> dict[str, str]:
    """Return the config keys that the node options set."""
    overrides: dict[str, str] = {}
    if settings.machine_type:
        overrides["machine_type"] = settings.machine_type
    if settings.image:
        overrides["default_image"] = settings.image
    if settings.preemptible is not None:
        overrides["preemptible"] = "y" if settings.preemptible else "n"
    if settings.linger is not None:
        overrides["worker_linger"] = f"{settings.linger:g}"
    return overrides


def _environ(settings: ExecutorSettings, base: Mapping[str, str]) -> dict[str, str]:
    """Return the environment with the role URLs given as options put in."""
    environ = dict(base)
    for role, variable in _ROLE_VARIABLES.items():
        value = getattr(settings, role)
        if value:
            environ[variable] = value
    return environ
