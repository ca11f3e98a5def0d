"""Fixtures shared by every test: an isolated state folder and worker processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sparkles_core.client import Client
from sparkles_core.config import load_config


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Point Sparkles at a fresh state folder and work in a fresh folder."""
    for name in list(os.environ):
        if name.startswith("SPARKLES_"):
            monkeypatch.delenv(name)
    state = tmp_path / "state"
    monkeypatch.setenv("SPARKLES_HOME", str(state))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return state


@pytest.fixture
def client(home: Path) -> Iterator[Client]:
    """Yield a client on the embedded default, stopping its workers after."""
    opened = Client(load_config())
    yield opened
    for node in opened.store.list_nodes():
        opened.provisioner.stop_cluster(node.cluster)
    opened.close()


WorkerFactory = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def start_worker(client: Client, tmp_path: Path) -> Iterator[WorkerFactory]:
    """Yield a function that starts ``sparkles-worker consume`` processes."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(
        cluster: str, node_id: str, *extra: str, debug: bool = False
    ) -> subprocess.Popen[bytes]:
        work = tmp_path / "nodes" / node_id
        argv = [
            sys.executable,
            "-m",
            "sparkles_worker",
            *(["--debug"] if debug else []),
            "consume",
            f"--store={client.config.store_url}",
            f"--storage={client.config.storage_url}",
            f"--cluster={cluster}",
            f"--node-id={node_id}",
            f"--work-dir={work}",
            f"--cache-dir={tmp_path / 'cache'}",
            *extra,
        ]
        log = (tmp_path / f"{node_id}.log").open("ab")
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def wait_for(predicate: Callable[[], object], timeout: float = 30.0) -> None:
    """Wait until ``predicate()`` is true, or fail the test."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {predicate}")
        time.sleep(0.05)


# -- CI guard: in CI nothing may be skipped ------------------------------------

_SKIPPED: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Remember every skipped test."""
    if report.skipped:
        _SKIPPED.append(report.nodeid)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when tests were skipped but every test must run."""
    if _SKIPPED and os.environ.get("SPARKLES_REQUIRE_EMULATORS") == "1":
        print(
            f"\nFAIL: {len(_SKIPPED)} tests were skipped, and in CI every "
            "test must run:\n  " + "\n  ".join(_SKIPPED[:20])
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
