"""Rule resources choose the nodes: through the CLI, and case by case."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from snakemake_executor_plugin_sparkles.machines import (
    DEFAULT_GPU_MODEL,
    PreemptionPolicy,
    place_job,
)
from sparkles_core.models import GPU, MachineSpec
from tests.plugin.conftest import OpenStore, RunSnakemake, write_snakefile

BASE = MachineSpec(machine_type="n2-standard-2", boot_disk_gb=40, preemptible=True)
NO_RULES = PreemptionPolicy(frozenset(), all_rules=False, retries=None, default=True)


@pytest.mark.parametrize(
    ("resources", "expected"),
    [
        ({}, {"machine_type": "n2-standard-2", "memory_mb": None, "gpus": ()}),
        ({"mem_mb": 2500.4}, {"memory_mb": 2501}),
        ({"disk_mb": 10_000}, {"boot_disk_gb": 40}),
        ({"disk_mb": 120_000}, {"boot_disk_gb": 120}),
        ({"machine_type": "c3-highcpu-8"}, {"machine_type": "c3-highcpu-8"}),
        ({"gpu": 2}, {"gpus": (GPU(type=DEFAULT_GPU_MODEL, count=2),)}),
        ({"gpu": 1, "gpu_model": "nvidia-l4"}, {"gpus": (GPU(type="nvidia-l4"),)}),
        ({"nvidia_gpu": 1}, {"gpus": (GPU(type=DEFAULT_GPU_MODEL),)}),
        ({"mem_mb": "lots"}, {"memory_mb": None}),
    ],
    ids=[
        "nothing-set",
        "memory-rounded-up",
        "small-disk-keeps-config",
        "big-disk-grows-boot",
        "machine-type",
        "gpus-default-model",
        "gpu-model",
        "legacy-nvidia-gpu",
        "non-numeric-ignored",
    ],
)
def test_resources_shape_the_machine(
    resources: dict[str, Any], expected: dict[str, Any]
) -> None:
    machine = place_job(resources, 1, ["r"], BASE, NO_RULES).machine

    assert {key: getattr(machine, key) for key in expected} == expected


def test_threads_become_cpus_and_runtime_a_timeout() -> None:
    placement = place_job({"runtime": 90}, 3, ["r"], BASE, NO_RULES)

    assert placement.machine.cpus == 3.0
    assert placement.timeout == 90 * 60


@pytest.mark.parametrize(
    ("policy", "rules", "preemptible", "attempts"),
    [
        (NO_RULES, ["a"], True, 3),
        (PreemptionPolicy(frozenset(), False, None, default=False), ["a"], False, 3),
        (PreemptionPolicy(frozenset({"a"}), False, 4, default=True), ["a"], True, 5),
        (PreemptionPolicy(frozenset({"a"}), False, 4, default=True), ["b"], False, 3),
        (PreemptionPolicy(frozenset({"a"}), False, 4, True), ["a", "b"], False, 3),
        (PreemptionPolicy(frozenset(), True, 1, default=False), ["b"], True, 2),
    ],
    ids=[
        "config-default",
        "config-says-no",
        "listed-rule",
        "unlisted-rule",
        "group-with-unlisted-rule",
        "all-rules",
    ],
)
def test_preemptible_rules_choose_node_class_and_attempts(
    policy: PreemptionPolicy, rules: list[str], preemptible: bool, attempts: int
) -> None:
    placement = place_job({}, 1, rules, BASE, policy)

    assert placement.machine.preemptible is preemptible
    assert placement.max_attempts == attempts


@pytest.mark.slow
def test_jobs_with_different_needs_get_different_clusters(
    run_snakemake: RunSnakemake, stored: OpenStore
) -> None:
    write_snakefile(
        Path.cwd(),
        """
        rule all:
            input: "big.txt", "small.txt"

        rule big:
            output: "big.txt"
            threads: 2
            resources:
                mem_mb=1500, disk_mb=80000, runtime=5, gpu=1,
                gpu_model="nvidia-l4", machine_type="n2-standard-8"
            shell: "echo big > {output}"

        rule small:
            output: "small.txt"
            shell: "echo small > {output}"
        """,
    )

    run_snakemake("--preemptible-rules", "small", "--preemptible-retries", "4")

    view = stored()
    jobs = {job.labels["snakemake-rule"]: job for job in view.jobs()}
    big, small = jobs["big"].machine, jobs["small"].machine
    assert (big.machine_type, big.cpus, big.memory_mb) == ("n2-standard-8", 2, 1500)
    assert (big.boot_disk_gb, big.gpus) == (80, (GPU(type="nvidia-l4"),))
    assert (big.preemptible, small.preemptible) == (False, True)
    assert (jobs["big"].max_attempts, jobs["small"].max_attempts) == (3, 5)
    assert jobs["big"].cluster != jobs["small"].cluster
    timeouts = {task.job_id: task.spec.timeout for task in view.tasks()}
    assert timeouts[jobs["big"].id] == 300
    assert Path("big.txt").read_text() == "big\n"
