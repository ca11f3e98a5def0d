# snakemake-interface-executor-plugins ships no type information (no py.typed).
# mypy: disable-error-code="import-untyped"
# mypy: allow-subclassing-any
"""The ``--sparkles-*`` options and the settings Snakemake needs from the plugin.

Snakemake turns each field of :class:`ExecutorSettings` into a command-line
option (``nodes`` becomes ``--sparkles-nodes``) and, since every field says
``env_var``, also reads ``SNAKEMAKE_SPARKLES_<FIELD>`` from the environment
(``SNAKEMAKE_SPARKLES_NODES``, ``SNAKEMAKE_SPARKLES_KEEP_CLUSTER=yes``); the
option wins when both are given.
It reads the field types at run time to parse the values, which is why this
module keeps real annotations (no ``from __future__ import annotations``)
and spells optional fields ``Optional[...]``.
"""

# ruff: noqa: UP045 - Snakemake parses Optional[X], not the X | None form.

from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from snakemake_interface_executor_plugins.settings import (
    CommonSettings,
    ExecutorSettingsBase,
)

__all__ = ["DEFAULT_NODES", "ExecutorSettings", "common_settings", "parse_flag"]

# Four workers keep a laptop responsive while running work in parallel; a
# bigger machine or the cloud asks for more with --sparkles-nodes.
DEFAULT_NODES = 4

_TRUE = ("y", "yes", "true", "1")
_FALSE = ("n", "no", "false", "0")


def parse_flag(value: str | bool) -> bool:
    """Return a yes/no option value as a bool."""
    if isinstance(value, bool):
        return value
    text = value.strip().lower()
    if text in _TRUE or text in _FALSE:
        return text in _TRUE
    raise ValueError(f"Expected yes or no, not {value!r}.")


@dataclass
class ExecutorSettings(ExecutorSettingsBase):
    """What ``snakemake --executor sparkles`` can be told on its command line."""

    config_file: Optional[Path] = field(
        default=None,
        metadata={
            "help": "Sparkles config file (INI with a [config] section). "
            "Default: the nearest .sparkles in the working folder or above; "
            "with none, everything runs on this machine.",
            "env_var": True,
        },
    )
    nodes: int = field(
        default=DEFAULT_NODES,
        metadata={
            "help": "Most nodes (workers) to run at once for each cluster; "
            "jobs with different needs use different clusters.",
            "env_var": True,
        },
    )
    machine_type: Optional[str] = field(
        default=None,
        metadata={
            "help": "Machine type of nodes for rules that do not set the "
            "machine_type resource. Default: the config's machine_type.",
            "env_var": True,
        },
    )
    image: Optional[str] = field(
        default=None,
        metadata={
            "help": "Container image that runs each job. It must hold Snakemake "
            "and the workflow's software. Default: the config's default_image, "
            "else the nodes' own environment.",
            "env_var": True,
        },
    )
    preemptible: Optional[bool] = field(
        default=None,
        metadata={
            "help": "Run jobs on preemptible (spot) nodes: yes or no. "
            "--preemptible-rules overrides this per rule. "
            "Default: the config's preemptible.",
            "type": parse_flag,
            "metavar": "yes|no",
            "env_var": True,
        },
    )
    linger: Optional[float] = field(
        default=None,
        metadata={
            "help": "Seconds an idle node waits for more jobs before it stops. "
            "Default: the config's worker_linger.",
            "env_var": True,
        },
    )
    keep_cluster: bool = field(
        default=False,
        metadata={
            "help": "Leave the nodes running when the workflow ends, to be "
            "reused by the next run on the same machines until they linger out.",
            "env_var": True,
        },
    )
    store: Optional[str] = field(
        default=None,
        metadata={
            "help": "Job and task store URL, e.g. sqlite:///path/store.db or "
            "datastore://my-project. Default: from the config.",
            "env_var": True,
        },
    )
    storage: Optional[str] = field(
        default=None,
        metadata={
            "help": "Storage URL for files and logs, e.g. file:///path or "
            "gs://bucket/prefix. Default: from the config.",
            "env_var": True,
        },
    )
    cluster: Optional[str] = field(
        default=None,
        metadata={
            "help": "Where nodes run: 'local', gce://PROJECT/ZONE[,ZONE...] "
            "or gce://PROJECT/REGION. Default: from the config.",
            "env_var": True,
        },
    )
    status_interval: Optional[float] = field(
        default=None,
        metadata={
            "help": "Seconds between two status checks of the running jobs "
            "(one store query each). Default: 0.2 with local nodes, else "
            "--seconds-between-status-checks.",
            "env_var": True,
        },
    )


# The plugin moves each job's files through the Sparkles CAS itself, so
# Snakemake needs neither a shared file system nor a default storage
# provider. When the user names one anyway, Snakemake moves the files and the
# plugin ships only the workflow's sources.
common_settings = CommonSettings(
    non_local_exec=True,
    implies_no_shared_fs=True,
    job_deploy_sources=False,
    pass_default_storage_provider_args=True,
    pass_default_resources_args=True,
    # Declared environment variables travel in the task's environment, not in
    # its command line, so they stay out of result.json and process listings.
    pass_envvar_declarations_to_cmd=False,
    # Nodes are expected to have the storage plugins installed (the worker
    # image, or this machine's environment); a pip install per job is slow.
    auto_deploy_default_storage_provider=False,
    init_seconds_before_status_checks=0,
    pass_group_args=True,
    can_transfer_local_files=True,
)
