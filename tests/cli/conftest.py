"""Fixtures for the ``sparkles`` command's tests."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result

from sparkles_core.cli import commands
from sparkles_core.cli.main import cli
from sparkles_core.client import Client
from sparkles_core.config import load_config
from sparkles_core.models import Download, Job, JobSpec, MachineSpec, TaskSpec

SPARKLES = str(Path(sys.executable).parent / "sparkles")
# Environment variables that make rich draw for a terminal, or size it.
CONSOLE_VARIABLES = ("FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE", "COLUMNS")
# A digest that no storage holds: a task that downloads it fails to stage.
MISSING_DIGEST = "ab" * 32

Invoke = Callable[..., Result]


@pytest.fixture(scope="session")
def sparkles_cli() -> click.Group:
    """Return the ``sparkles`` group with every subcommand registered."""
    for command in commands.ALL:
        cli.add_command(command)
    return cli


@pytest.fixture
def invoke(sparkles_cli: click.Group) -> Invoke:
    """Return a function that runs ``sparkles ARGS`` in-process."""

    def run(
        *args: str, input: str | None = None, env: dict[str, str] | None = None
    ) -> Result:
        return CliRunner().invoke(sparkles_cli, list(args), input=input, env=env)

    return run


def run_sparkles(
    *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the installed ``sparkles`` command with its output piped."""
    return subprocess.run(
        [SPARKLES, *args], capture_output=True, text=True, input=input, timeout=180
    )


def isolate(monkeypatch: pytest.MonkeyPatch, state: Path) -> None:
    """Point Sparkles at ``state`` and make the console plain."""
    for name in list(os.environ):
        if name.startswith("SPARKLES_") or name in CONSOLE_VARIABLES:
            monkeypatch.delenv(name)
    monkeypatch.setenv("SPARKLES_HOME", str(state))


@pytest.fixture
def plain_output(monkeypatch: pytest.MonkeyPatch) -> None:
    """Drop the variables that would make rich draw for a terminal."""
    for name in CONSOLE_VARIABLES:
        monkeypatch.delenv(name, raising=False)


def run_worker(client: Client, cluster: str, work: Path, max_tasks: int) -> None:
    """Run one real worker until it has run ``max_tasks`` tasks of ``cluster``.

    It claims in task order, so the first ``max_tasks`` pending tasks run.
    """
    argv = [
        sys.executable,
        "-m",
        "sparkles_worker",
        "consume",
        f"--store={client.config.store_url}",
        f"--storage={client.config.storage_url}",
        f"--cluster={cluster}",
        f"--node-id=test-node-{cluster}",
        f"--work-dir={work / 'node'}",
        f"--cache-dir={work / 'cache'}",
        f"--max-tasks={max_tasks}",
        "--linger=5",
        "--log-interval=0.2",
    ]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr


def sample_spec() -> JobSpec:
    """Return a job whose tasks end every way a task can end."""
    return JobSpec(
        name="sample",
        tasks=[
            TaskSpec(
                command="seq 1 30; echo result-a > out.txt",
                parameters={"name": "a", "size": "1"},
            ),
            TaskSpec(
                command="echo oops; exit 3", parameters={"name": "b", "size": "2"}
            ),
            TaskSpec(
                command="true",
                parameters={"name": "c", "size": "3"},
                downloads=[Download(dst="gone.txt", digest=MISSING_DIGEST)],
            ),
            TaskSpec(command="kill -9 $$", parameters={"name": "d", "size": "4"}),
            TaskSpec(command="true", parameters={"name": "e", "size": "5"}),
        ],
    )


@dataclass(frozen=True)
class Sample:
    """A finished job in its own state folder: tasks 1-4 ran, 5 is pending.

    Task 1 exits 0 and writes out.txt; 2 exits 3; 3 fails to stage; 4 is
    killed by signal 9; 5 never ran.
    """

    home: Path
    job_id: str = "sample"


@pytest.fixture(scope="session")
def sample_job(tmp_path_factory: pytest.TempPathFactory) -> Sample:
    """Run the sample job once per test session, with a real worker."""
    root = tmp_path_factory.mktemp("sample")
    sample = Sample(root / "state")
    with pytest.MonkeyPatch.context() as monkeypatch:
        isolate(monkeypatch, sample.home)
        client = Client(load_config())
        try:
            job = client.submit(sample_spec(), sample.job_id)
            run_worker(client, job.cluster, root, max_tasks=4)
        finally:
            client.close()
    return sample


@pytest.fixture
def sample(
    sample_job: Sample, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[Sample]:
    """Use the sample job's state folder (read only!) from a fresh folder."""
    isolate(monkeypatch, sample_job.home)
    monkeypatch.chdir(tmp_path)
    yield sample_job


@pytest.fixture
def finished(client: Client, tmp_path: Path) -> Callable[..., Job]:
    """Return a function that submits a job and runs its first tasks."""

    def submit_and_run(name: str, tasks: list[TaskSpec], ran: int | None = None) -> Job:
        # A machine type of its own gives the job a cluster of its own, so
        # a worker run for one job never claims another job's tasks.
        machine = MachineSpec(machine_type=f"test-{name}")
        job = client.submit(JobSpec(name=name, tasks=tasks, machine=machine), name)
        count = len(tasks) if ran is None else ran
        if count:
            run_worker(client, job.cluster, tmp_path / name, count)
        return job

    return submit_and_run
