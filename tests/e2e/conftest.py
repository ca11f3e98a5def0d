"""Fixtures for the end-to-end tests: the whole Google Cloud path, emulated.

A test gets a working folder whose ``.sparkles`` selects the cloud backends:
Google's Datastore emulator for the store (a namespace of its own),
fake-gcs-server for storage (a bucket of its own), and the fake Compute API
for the cluster, whose instances are real worker processes on this machine.
The ``sparkles`` and ``snakemake`` commands run in subprocesses, exactly as a
user runs them; they and the workers find the emulators through
``DATASTORE_EMULATOR_HOST``, ``STORAGE_EMULATOR_HOST`` and
``SPARKLES_COMPUTE_ENDPOINT``.
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from sparkles_core.cluster.gce_api import ENDPOINT_ENV
from sparkles_core.store.datastore import DatastoreStore
from tests.emulators.datastore import datastore_emulator
from tests.emulators.gcs import gcs_bucket, gcs_emulator
from tests.fakes.compute import FakeCompute

__all__ = ["Cloud", "datastore_emulator", "gcs_bucket", "gcs_emulator"]

PROJECT = "test-project"
BIN = Path(sys.executable).parent
# Short enough that the nodes go soon after the work is done, long enough
# that a node does not leave while the monitor is still handing out tasks.
LINGER_S = 4


@dataclass
class Cloud:
    """A working folder set up for the cloud backends, and their handles."""

    work: Path
    bucket: str
    compute: FakeCompute
    store: DatastoreStore

    def config(self, extra: str = "") -> None:
        """(Re)write the folder's ``.sparkles``, adding the ``extra`` lines."""
        (self.work / ".sparkles").write_text(
            "[config]\n"
            f"project = {PROJECT}\n"
            "zones = us-central1-a, us-central1-b\n"
            f"default_url_prefix = gs://{self.bucket}/sparkles\n"
            f"store = {self.store.url}\n"
            "machine_type = n2-standard-2\n"
            "sparklesworker_image = example.org/sparkles-worker:e2e\n"
            f"worker_linger = {LINGER_S}\n" + extra
        )

    def run(
        self, *argv: str, timeout: float = 240.0, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        """Run a command of the virtualenv in the working folder (or ``cwd``)."""
        return subprocess.run(
            [str(BIN / argv[0]), *argv[1:]],
            cwd=cwd or self.work,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self, *argv: str, log: Path) -> subprocess.Popen[bytes]:
        """Start a command of the virtualenv in the working folder."""
        with log.open("wb") as out:
            return subprocess.Popen(
                [str(BIN / argv[0]), *argv[1:]],
                cwd=self.work,
                stdout=out,
                stderr=subprocess.STDOUT,
            )


@pytest.fixture
def cloud(
    home: Path,
    tmp_path: Path,
    datastore_emulator: str,
    gcs_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Cloud]:
    """Yield a working folder on the emulated cloud; kill every node after."""
    monkeypatch.setenv("PATH", f"{BIN}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("PYTHONDONTWRITEBYTECODE", "1")
    compute = FakeCompute(tmp_path / "nodes").start()
    monkeypatch.setenv(ENDPOINT_ENV, compute.endpoint)
    namespace = f"e2e-{secrets.token_hex(6)}"
    store = DatastoreStore.from_url(f"datastore://{PROJECT}?namespace={namespace}")
    cloud = Cloud(Path.cwd(), gcs_bucket, compute, store)
    cloud.config()
    try:
        yield cloud
    finally:
        compute.close()
        store.close()
