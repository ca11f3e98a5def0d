"""Fixtures for the Snakemake plugin: the real ``snakemake`` CLI, workers, store."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from sparkles_core.client import Client
from sparkles_core.config import load_config
from sparkles_core.models import Job, NodeReq, Task, TaskResult
from sparkles_core.plugins import open_storage
from sparkles_core.store.sqlite import SQLiteStore
from tests.conftest import wait_for

SNAKEMAKE = str(Path(sys.executable).parent / "snakemake")
REPO = Path(__file__).parents[2]
EXAMPLES = REPO / "example_workflows"

# A loaded two-core machine may need a minute for a few Snakemake start-ups.
RUN_TIMEOUT_S = 240

RunSnakemake = Callable[..., subprocess.CompletedProcess[str]]


def write_snakefile(folder: Path, text: str) -> Path:
    """Write a Snakefile (dedented) into ``folder`` and return its path."""
    path = folder / "Snakefile"
    path.write_text(textwrap.dedent(text).lstrip())
    return path


def snakemake_argv(*args: str) -> list[str]:
    """Return the command line of a Sparkles run of the current folder."""
    return [SNAKEMAKE, "--executor", "sparkles", "--jobs", "4", "--nocolor", *args]


@pytest.fixture
def run_snakemake(checked_home: Path) -> RunSnakemake:
    """Return a function that runs snakemake in the current folder."""

    def run(
        *args: str, env: dict[str, str] | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            snakemake_argv(*args),
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            env={**os.environ, **(env or {})},
        )
        if check and result.returncode != 0:
            pytest.fail(f"snakemake failed:\n{result.stdout}\n{result.stderr}")
        return result

    return run


class BackgroundRun:
    """A snakemake run started in the background, its stderr kept in a file."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        with log.open("w") as stderr:
            self.process = subprocess.Popen(
                argv, stdout=subprocess.DEVNULL, stderr=stderr, env=env
            )

    def finish(self) -> tuple[int, str]:
        """Wait for the run to end; return its exit code and stderr."""
        code = self.process.wait(timeout=RUN_TIMEOUT_S)
        return code, self.log.read_text()

    def stop(self) -> None:
        """Kill the run if it is still going."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()


StartSnakemake = Callable[..., BackgroundRun]


@pytest.fixture
def start_snakemake(checked_home: Path, tmp_path: Path) -> Iterator[StartSnakemake]:
    """Yield a function that starts snakemake in the current folder, unwaited."""
    runs: list[BackgroundRun] = []

    def start(*args: str, env: dict[str, str] | None = None) -> BackgroundRun:
        log = tmp_path / f"snakemake-{len(runs)}.err"
        runs.append(
            BackgroundRun(snakemake_argv(*args), {**os.environ, **(env or {})}, log)
        )
        return runs[-1]

    yield start
    for run in runs:
        run.stop()


def blocked_until(release: Path) -> str:
    """Return a shell command that waits until the file ``release`` exists."""
    return f"while [ ! -e '{release}' ]; do sleep 0.2; done"


def worker_processes(home: Path) -> list[psutil.Process]:
    """Return the live worker processes that use the state folder ``home``."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        if "sparkles_worker" in cmdline and str(home) in cmdline:
            found.append(process)
    return found


@pytest.fixture
def checked_home(home: Path) -> Iterator[Path]:
    """Yield the state folder; fail if a worker process outlives the test."""
    yield home
    stray = worker_processes(home)
    for process in stray:
        process.kill()
    assert not stray, f"worker processes left running: {stray}"


@pytest.fixture
def lingering_nodes(checked_home: Path) -> Iterator[Path]:
    """Yield the state folder; stop every node a run left running, after."""
    yield checked_home
    client = Client(load_config())
    try:
        for cluster in {node.cluster for node in client.store.list_nodes()}:
            client.provisioner.stop_cluster(cluster)
    finally:
        client.close()


class FaultControl:
    """Switches and counters of the faulty store that a run was pointed at."""

    def __init__(self, folder: Path, home: Path) -> None:
        self.folder = folder
        site = folder / "site"
        info = site / "faulty_store-0.dist-info"
        info.mkdir(parents=True)
        (info / "METADATA").write_text("Metadata-Version: 2.1\nName: faulty-store\n")
        (info / "entry_points.txt").write_text(
            "[sparkles]\nfaulty_store = tests.plugin.faulty_store\n"
        )
        self.env = {
            "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
            "FAULTY_STORE_DIR": str(folder),
            "SPARKLES_STORE": f"faultysqlite://{home}/store.db",
        }

    def fail_task_reads(self, failing: bool = True) -> None:
        """Make the submitting process's task reads fail, or work again."""
        flag = self.folder / "fail-get-tasks"
        if failing:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    def hold_poller_reads(self, holding: bool = True) -> None:
        """Make the status poller's next task read wait, or let it go on."""
        flag = self.folder / "hold-poller-reads"
        if holding:
            flag.touch()
        else:
            flag.unlink(missing_ok=True)

    def poller_read_held(self) -> bool:
        """Return True once a status poller's read is waiting."""
        return (self.folder / "poller-read-held").exists()

    def held_reads(self) -> list[str]:
        """Return how each held read ended: ``read`` or ``failed: ERROR``."""
        log = self.folder / "held_reads.log"
        return log.read_text().splitlines() if log.exists() else []

    def events(self) -> list[str]:
        """Return the lifecycle events the plugin heard, one line each."""
        log = self.folder / "events.log"
        return log.read_text().splitlines() if log.exists() else []

    def task_reads(self) -> list[int]:
        """Return how many ids each task read of the submitting process asked for."""
        log = self.folder / "get_tasks.log"
        return [int(line) for line in log.read_text().split()] if log.exists() else []


@pytest.fixture
def faulty_store(home: Path, tmp_path: Path) -> FaultControl:
    """Return the controls of a store plugin that fails or counts on demand.

    Pass ``faulty_store.env`` to the run; the store is the run's usual file.
    """
    return FaultControl(tmp_path / "faults", home)


class StoreView:
    """Read-only access to the jobs and tasks a run left in the store."""

    def __init__(self) -> None:
        config = load_config()
        self._store = SQLiteStore.from_url(config.store_url)
        self._storage = open_storage(config.storage_url)

    def jobs(self) -> list[Job]:
        """Return every job, oldest first."""
        return self._store.list_jobs()

    def tasks(self) -> list[Task]:
        """Return every task of every job."""
        return [task for job in self.jobs() for task in self._store.list_tasks(job.id)]

    def nodes(self) -> list[NodeReq]:
        """Return every node record, of every cluster."""
        return self._store.list_nodes()

    def log(self, task: Task) -> str:
        """Return the merged output of the task's last attempt."""
        assert task.log_key is not None, f"task {task.id} has no log"
        return self._storage.get_bytes(task.log_key).decode()

    def outputs(self, task: Task) -> list[str]:
        """Return the paths of the files the task's last attempt uploaded."""
        assert task.result_key is not None, f"task {task.id} has no result"
        data = self._storage.get_bytes(task.result_key)
        return [output.path for output in TaskResult.model_validate_json(data).outputs]

    def close(self) -> None:
        """Close the store."""
        self._store.close()


OpenStore = Callable[[], StoreView]


def open_when_created(stored: OpenStore, home: Path) -> StoreView:
    """Wait until a run has created the store, then open it."""
    wait_for(lambda: (home / "store.db").exists(), timeout=RUN_TIMEOUT_S)
    return stored()


@pytest.fixture
def stored(home: Path) -> Iterator[OpenStore]:
    """Yield a function that opens the run's store (after a run made it)."""
    views: list[StoreView] = []

    def open_view() -> StoreView:
        views.append(StoreView())
        return views[-1]

    yield open_view
    for view in views:
        view.close()
