"""Tasks whose job names an image run through ``docker run``.

No Docker engine is needed: the command line is checked as built, and the
worker runs against a stand-in ``docker`` that records how it was called
and runs the command itself.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sparkles_core.models import JobSpec, TaskSpec, TaskStatus
from sparkles_core.store.sqlite import SQLiteStore
from sparkles_core.submit import store_job
from sparkles_worker.container import ContainerRun, container_name, node_has_gpus
from tests.conftest import wait_for

STAND_IN = """#!{python}
import json, os, sys
args = sys.argv[1:]
seen = {{key: os.environ.get(key) for key in ("GREETING", "SPARKLES_TASK_ID")}}
with open({log!r}, "a") as log:
    log.write(json.dumps({{"argv": args, "env": seen}}) + "\\n")
if args[0] == "run":
    os.chdir(next(a.split("=", 1)[1] for a in args if a.startswith("--workdir=")))
    shell = args.index("/bin/sh")
    os.execv("/bin/sh", args[shell:])
"""


def run_of(**fields: Any) -> ContainerRun:
    values: dict[str, Any] = {
        "image": "example.org/tools/aligner:2",
        "command": "align --in reads.fq",
        "folder": Path("/work/task/work"),
        "cwd": Path("/work/task/work/sub"),
        "env": {"TOKEN": "s3cret", "SPARKLES_TASK_ID": "job.1"},
        "name": "sparkles-job.1-1",
        "uid": 1000,
        "gid": 100,
    }
    values.update(fields)
    return ContainerRun(**values)


def test_docker_run_mounts_the_task_folder_and_passes_env_by_name() -> None:
    argv = run_of().argv()

    assert argv == [
        "docker",
        "run",
        "--rm",
        "--name=sparkles-job.1-1",
        "--init",
        "--user=1000:100",
        "--volume=/work/task/work:/work/task/work",
        "--workdir=/work/task/work/sub",
        "--env=SPARKLES_TASK_ID",
        "--env=TOKEN",
        "example.org/tools/aligner:2",
        "/bin/sh",
        "-c",
        "align --in reads.fq",
    ]
    assert not any("s3cret" in arg for arg in argv), "env values stay off argv"


def test_gpu_node_gives_the_container_every_gpu() -> None:
    argv = run_of(gpus=True).argv()

    assert argv[argv.index("example.org/tools/aligner:2") - 1] == "--gpus=all"


def test_container_name_is_unique_per_attempt_and_valid() -> None:
    assert container_name("my job/x.3", 2) == "sparkles-my-job-x.3-2"


def test_gpus_are_seen_from_the_nvidia_devices(tmp_path: Path) -> None:
    assert not node_has_gpus(tmp_path)
    (tmp_path / "nvidia0").touch()
    assert node_has_gpus(tmp_path)


@pytest.fixture
def docker_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put a stand-in ``docker`` first on PATH; return its call log."""
    bin_dir, log = tmp_path / "bin", tmp_path / "docker-calls.jsonl"
    bin_dir.mkdir()
    docker = bin_dir / "docker"
    docker.write_text(STAND_IN.format(python=sys.executable, log=str(log)))
    docker.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def start_worker(
    store: SQLiteStore, tmp_path: Path, cluster: str, *extra: str
) -> subprocess.Popen[bytes]:
    node = tmp_path / "node"
    argv = [
        sys.executable,
        "-m",
        "sparkles_worker",
        "consume",
        f"--store={store.url}",
        f"--storage=file://{tmp_path}/storage",
        f"--cluster={cluster}",
        "--node-id=node-1",
        f"--work-dir={node}/work",
        f"--cache-dir={node}/cache",
        "--container-runtime=docker",
        *extra,
    ]
    with (tmp_path / "worker.log").open("ab") as log:
        return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)


def calls(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


@pytest.mark.slow
def test_task_of_a_job_with_an_image_runs_through_docker(
    store: SQLiteStore, tmp_path: Path, docker_log: Path
) -> None:
    task = TaskSpec(
        command="echo $GREETING from $SPARKLES_TASK_ID", env={"GREETING": "hi"}
    )
    image = "example.org/tools/aligner:2"
    job = store_job(store, "job-1", JobSpec(name="job-1", tasks=[task], image=image))

    worker = start_worker(store, tmp_path, job.cluster, "--linger=0.5")

    assert worker.wait(timeout=180) == 0
    done = store.get_task("job-1.1")
    assert done is not None and done.succeeded
    (call,) = calls(docker_log)
    argv = call["argv"]
    assert argv[:3] == ["run", "--rm", "--name=sparkles-job-1.1-1"]
    assert image in argv and "--env=GREETING" in argv
    assert f"--user={os.getuid()}:{os.getgid()}" in argv
    assert call["env"] == {"GREETING": "hi", "SPARKLES_TASK_ID": "job-1.1"}
    assert argv[-1] == task.shell_command


@pytest.mark.slow
def test_task_of_a_job_without_an_image_runs_in_the_worker(
    store: SQLiteStore, tmp_path: Path, docker_log: Path
) -> None:
    job = store_job(
        store, "job-1", JobSpec(name="job-1", tasks=[TaskSpec(command="true")])
    )

    worker = start_worker(store, tmp_path, job.cluster, "--linger=0.5")

    assert worker.wait(timeout=180) == 0
    done = store.get_task("job-1.1")
    assert done is not None and done.succeeded
    assert calls(docker_log) == []


@pytest.mark.slow
def test_stopping_the_worker_kills_the_container_by_name(
    store: SQLiteStore, tmp_path: Path, docker_log: Path
) -> None:
    spec = JobSpec(name="job-1", tasks=[TaskSpec(command="sleep 300")], image="x/y:1")
    job = store_job(store, "job-1", spec)
    worker = start_worker(store, tmp_path, job.cluster, "--linger=60")
    wait_for(lambda: len(calls(docker_log)) == 1, 120)

    worker.send_signal(signal.SIGTERM)

    assert worker.wait(timeout=120) == 0
    kills = [c["argv"] for c in calls(docker_log) if c["argv"][0] == "kill"]
    assert ["kill", "--signal=SIGTERM", "sparkles-job-1.1-1"] in kills
    task = store.get_task("job-1.1")
    assert task is not None and task.status is TaskStatus.PENDING
    assert task.history[-1].reason == "preempted"
