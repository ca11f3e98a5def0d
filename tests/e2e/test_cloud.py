"""The Google Cloud path end to end: the real commands against emulated services.

Each test drives ``sparkles`` or ``snakemake`` in a subprocess, as a user
would, with the store in the Datastore emulator, files in fake-gcs-server
and nodes from the fake Compute API (real worker processes here).
"""

from __future__ import annotations

import shutil
import time
from pathlib import Path

import pytest

import snakemake_executor_plugin_sparkles
from sparkles_core.models import Task, TaskStatus
from tests.conftest import wait_for
from tests.e2e.conftest import Cloud

pytestmark = [pytest.mark.emulator, pytest.mark.slow]

EXAMPLES = Path(snakemake_executor_plugin_sparkles.__file__).parents[1] / (
    "example_workflows"
)
# The first attempt blocks (and gets preempted); a later one finishes.
FIRST_ATTEMPT_HANGS = 'if [ "$SPARKLES_ATTEMPT" = 1 ]; then sleep 300; fi; echo done'


def completions(task: Task) -> int:
    return sum(1 for entry in task.history if entry.status is TaskStatus.COMPLETE)


def test_sub_and_watch_run_a_job_on_cloud_nodes_and_fetch_its_outputs(
    cloud: Cloud,
) -> None:
    (cloud.work / "in.txt").write_text("hello\n")
    command = "cat in.txt; echo task {index} > out.txt"

    sub = cloud.run(
        "sparkles", "sub", "-n", "e2e", "--seq", "4", "--nodes", "2", "--no-wait",
        "-u", "in.txt", "--", command,
    )  # fmt: skip
    assert sub.returncode == 0, sub.stderr
    watch = cloud.run("sparkles", "watch", "e2e", "--no-loglive")
    fetch = cloud.run("sparkles", "fetch", "e2e", "--dest", "results")

    assert watch.returncode == 0, watch.stdout + watch.stderr
    assert fetch.returncode == 0, fetch.stderr
    outputs = sorted((cloud.work / "results").glob("*/out.txt"))
    assert sorted(path.read_text() for path in outputs) == [
        f"task {index}\n" for index in range(4)
    ]
    logs = sorted((cloud.work / "results").glob("*/stdout.txt"))
    assert [path.read_text() for path in logs] == ["hello\n"] * 4
    assert [model for _, model in cloud.compute.inserts()] == ["SPOT", "SPOT"]
    assert {zone for zone, _ in cloud.compute.inserts()} == {
        "us-central1-a",
        "us-central1-b",
    }
    assert cloud.compute.names() == [], "the idle cluster was deleted"


def test_spot_stock_out_while_growing_falls_back_instead_of_ending_the_job(
    cloud: Cloud,
) -> None:
    for zone in ("us-central1-a", "us-central1-b"):
        cloud.compute.fail_next_insert("capacity", zone=zone)

    sub = cloud.run(
        "sparkles", "sub", "-n", "short", "--seq", "2", "--nodes", "1", "--",
        "echo {index}",
    )  # fmt: skip

    assert sub.returncode == 0, sub.stdout + sub.stderr
    assert "no capacity left" in sub.stderr
    models = [model for _, model in cloud.compute.inserts()]
    assert models == ["SPOT", "SPOT", "STANDARD"]
    tasks = cloud.store.list_tasks("short")
    assert [task.succeeded for task in tasks] == [True, True]


def test_snakemake_workflow_runs_on_cloud_nodes_and_leaves_none_behind(
    cloud: Cloud,
) -> None:
    workflow = cloud.work / "hello"
    shutil.copytree(
        EXAMPLES / "hello",
        workflow,
        ignore=shutil.ignore_patterns(".snakemake", "greetings*"),
    )
    shutil.move(cloud.work / ".sparkles", workflow / ".sparkles")

    done = cloud.run(
        "snakemake", "--executor", "sparkles", "--jobs", "2", cwd=workflow,
        timeout=280,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    assert (workflow / "greetings.txt").read_text() == (
        "Hello, world!\nHello, sparkles!\n"
    )
    assert cloud.compute.inserts(), "the jobs ran on cloud nodes"
    assert cloud.compute.names() == [], "every instance was deleted"


def test_preempted_nodes_give_way_to_standard_ones_and_each_task_runs_once(
    cloud: Cloud, tmp_path: Path
) -> None:
    cloud.config("max_preemptable_attempts_scale = 1\n")
    sub = cloud.run(
        "sparkles", "sub", "-n", "pre", "--seq", "2", "--nodes", "2", "--no-wait",
        "--", FIRST_ATTEMPT_HANGS,
    )  # fmt: skip
    assert sub.returncode == 0, sub.stderr
    watch = cloud.start("sparkles", "watch", "pre", "--no-loglive", log=tmp_path / "w")
    try:
        wait_for(lambda: _all_claimed(cloud), timeout=120)
        for name in cloud.compute.names():
            cloud.compute.preempt(name)
        code = watch.wait(timeout=240)
    finally:
        if watch.poll() is None:
            watch.kill()
            watch.wait()

    assert code == 0, (tmp_path / "w").read_text()[-3000:]
    tasks = cloud.store.list_tasks("pre")
    assert [task.status for task in tasks] == [TaskStatus.COMPLETE] * 2
    for task in tasks:
        assert task.succeeded and task.attempt == 2
        assert completions(task) == 1
        assert "preempted" in [entry.reason for entry in task.history]
    models = [model for _, model in cloud.compute.inserts()]
    assert models == ["SPOT", "SPOT", "STANDARD", "STANDARD"]
    wait_for(lambda: cloud.compute.names() == [], timeout=30)


def _all_claimed(cloud: Cloud) -> bool:
    tasks = cloud.store.list_tasks("pre")
    claimed = [task for task in tasks if task.status is TaskStatus.CLAIMED]
    if len(tasks) == 2 and len(claimed) == 2:
        return True
    time.sleep(0.5)  # the emulator serves every other test too
    return False
