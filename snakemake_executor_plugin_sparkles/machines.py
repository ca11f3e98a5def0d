"""Map a Snakemake job's resources onto the nodes that run it.

``threads`` become the node's CPUs, ``mem_mb`` its memory, ``disk_mb`` its
boot disk, ``gpu`` (or the older ``nvidia_gpu``) with ``gpu_model`` its
accelerators, and the ``machine_type`` resource overrides the configured
machine type. ``runtime`` (minutes) becomes the task's timeout. Rules named
by ``--preemptible-rules`` run on preemptible nodes, and Sparkles re-runs a
preempted job up to ``--preemptible-retries`` times before Snakemake hears
of it. Jobs whose needs differ land on different clusters.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sparkles_core.models import GPU, MachineSpec

__all__ = ["DEFAULT_GPU_MODEL", "Placement", "PreemptionPolicy", "place_job"]

logger = logging.getLogger(__name__)

# The most widely offered accelerator on Compute Engine; a rule that needs
# another names it with the gpu_model resource.
DEFAULT_GPU_MODEL = "nvidia-tesla-t4"

# Sparkles' own budget for infrastructure retries when Snakemake gives none.
DEFAULT_MAX_ATTEMPTS = 3


@dataclass(frozen=True)
class PreemptionPolicy:
    """Which rules may run on preemptible nodes, and how often to re-run them."""

    rules: frozenset[str]
    all_rules: bool
    retries: int | None
    default: bool

    def allows(self, rules: Iterable[str]) -> bool:
        """Return True if every one of ``rules`` may run on preemptible nodes."""
        if not self.all_rules and not self.rules:
            return self.default
        return self.all_rules or all(rule in self.rules for rule in rules)


@dataclass(frozen=True)
class Placement:
    """Where and how long one job may run."""

    machine: MachineSpec
    timeout: float | None
    max_attempts: int


def place_job(
    resources: Mapping[str, Any],
    threads: int,
    rules: Iterable[str],
    base: MachineSpec,
    policy: PreemptionPolicy,
) -> Placement:
    """Return the machine, timeout and attempt budget for a job."""
    preemptible = policy.allows(rules)
    machine = base.model_copy(
        update={
            "machine_type": str(resources.get("machine_type") or base.machine_type),
            "cpus": float(max(threads, 1)),
            "memory_mb": _whole(resources, "mem_mb"),
            "boot_disk_gb": _boot_disk_gb(resources, base.boot_disk_gb),
            "gpus": _gpus(resources),
            "preemptible": preemptible,
        }
    )
    attempts = DEFAULT_MAX_ATTEMPTS
    if preemptible and policy.retries is not None:
        attempts = policy.retries + 1
    runtime = _number(resources, "runtime")
    timeout = runtime * 60.0 if runtime else None
    return Placement(machine, timeout, attempts)


def _number(resources: Mapping[str, Any], name: str) -> float | None:
    """Return a numeric resource, or None when unset or not a number."""
    value = resources.get(name)
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        logger.warning("Resource %s=%r is not a number; ignoring it", name, value)
        return None
    return number if number > 0 else None


def _whole(resources: Mapping[str, Any], name: str) -> int | None:
    number = _number(resources, name)
    return None if number is None else math.ceil(number)


def _boot_disk_gb(resources: Mapping[str, Any], configured: int) -> int:
    """Return a boot disk big enough for ``disk_mb``, never below the config's."""
    disk_mb = _number(resources, "disk_mb")
    if disk_mb is None:
        return configured
    return max(configured, math.ceil(disk_mb / 1000))


def _gpus(resources: Mapping[str, Any]) -> tuple[GPU, ...]:
    count = _whole(resources, "gpu") or _whole(resources, "nvidia_gpu")
    if not count:
        return ()
    model = str(resources.get("gpu_model") or DEFAULT_GPU_MODEL)
    return (GPU(type=model, count=count),)
