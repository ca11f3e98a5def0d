"""Google's Datastore emulators for the tests, started once per test session.

``datastore_emulator`` is the Firestore emulator of the Cloud SDK in Datastore
mode (Debian package ``google-cloud-cli-firestore-emulator``): the service the
store targets, with its pessimistic locks and aggregation queries. It starts
straight from its jar with java on 127.0.0.1 and a free port::

    java -cp <sdk>/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar \\
        com.google.cloud.datastore.emulator.firestore.CloudFirestore \\
        --host=127.0.0.1 --port=PORT --database-mode=datastore-mode

and the fixture sets ``DATASTORE_EMULATOR_HOST`` for the session, which the
Google client (and so every store a test opens, in any process) obeys.

``index_checking_emulator`` is the legacy Datastore emulator (package
``google-cloud-cli-datastore-emulator``) in Firestore-in-Datastore mode,
which, unlike the other, refuses a query that needs a composite index missing
from the store's ``index.yaml``; it has no aggregation queries::

    java -cp <sdk>/platform/cloud-datastore-emulator/CloudDatastore.jar \\
        com.google.cloud.datastore.emulator.CloudDatastore start \\
        --host=127.0.0.1 --port=PORT --testing --firestore_in_datastore_mode \\
        --require_indexes --index_file=sparkles_core/store/index.yaml FOLDER

Both keep everything in memory and answer ``GET /`` once they are ready.

Where java or the jar is missing the tests that need it are skipped, unless
``SPARKLES_REQUIRE_EMULATORS=1`` (as in CI), where that is a failure.
"""

from __future__ import annotations

import functools
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = [
    "DatastoreEmulator",
    "datastore_emulator",
    "find_jar",
    "index_checking_emulator",
    "start_datastore_emulator",
    "start_index_checking_emulator",
]

FIRESTORE_JAR = Path("platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")
FIRESTORE_MAIN = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
LEGACY_JAR = Path("platform/cloud-datastore-emulator/CloudDatastore.jar")
LEGACY_MAIN = "com.google.cloud.datastore.emulator.CloudDatastore"
HOST_VARIABLE = "DATASTORE_EMULATOR_HOST"
INDEX_FILE = Path(__file__).parents[2] / "sparkles_core" / "store" / "index.yaml"

# Where the Debian packages and the SDK's own installer put the Cloud SDK.
_SDK_GUESSES = (
    Path("/usr/lib/google-cloud-sdk"),
    Path("/usr/share/google-cloud-sdk"),
    Path("/opt/google-cloud-sdk"),
)

# The JVM takes a few seconds to start on an idle machine; a busy shared one
# can take many times that.
_START_TIMEOUT_S = 120.0
_STOP_TIMEOUT_S = 30.0


def find_jar(jar: Path) -> Path | None:
    """Return the emulator jar at ``jar`` inside the Cloud SDK, or None."""
    roots: list[Path | None] = [_sdk_root_from_gcloud(), *_SDK_GUESSES]
    if "CLOUDSDK_ROOT_DIR" in os.environ:
        roots.insert(0, Path(os.environ["CLOUDSDK_ROOT_DIR"]))
    for root in roots:
        if root is not None and (root / jar).is_file():
            return root / jar
    return None


@functools.cache
def _sdk_root_from_gcloud() -> Path | None:
    """Return the SDK root that ``gcloud info`` reports, or None."""
    gcloud = shutil.which("gcloud")
    if gcloud is None:
        return None
    argv = [gcloud, "info", "--format=value(installation.sdk_root)"]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    root = done.stdout.strip()
    return Path(root) if done.returncode == 0 and root else None


@dataclass
class DatastoreEmulator:
    """A running emulator process and the address it listens on."""

    process: subprocess.Popen[bytes]
    host: str
    log: Path

    @classmethod
    def start(cls, argv: list[str], host: str, log: Path) -> DatastoreEmulator:
        """Run ``argv``, an emulator serving ``host``, and wait until it answers."""
        with log.open("wb") as out:
            process = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)
        emulator = cls(process, host, log)
        try:
            emulator.wait_until_ready()
        except BaseException:
            emulator.stop()
            raise
        return emulator

    def wait_until_ready(self) -> None:
        """Return once ``GET /`` answers, or raise with the emulator's log."""
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the Datastore emulator exited: {self._tail()}")
            try:
                with urllib.request.urlopen(f"http://{self.host}/", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        raise RuntimeError(
            f"the Datastore emulator did not answer within {_START_TIMEOUT_S} s: "
            f"{self._tail()}"
        )

    def stop(self) -> None:
        """Stop the emulator and wait for it to exit."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=_STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def _tail(self) -> str:
        """Return the end of the emulator's output, for a failure message."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return text[-2000:] or "(no output)"


def _free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _missing(reason: str) -> None:
    """Skip, or fail when every emulator is required, saying what is missing."""
    if os.environ.get("SPARKLES_REQUIRE_EMULATORS") == "1":
        pytest.fail(f"{reason}, and SPARKLES_REQUIRE_EMULATORS=1", pytrace=False)
    pytest.skip(reason)


def _java_and_jar(jar: Path, package: str) -> tuple[str, Path]:
    """Return java and the emulator jar, or skip (or fail) saying what is missing."""
    java = shutil.which("java")
    if java is None:
        _missing("java is not installed, so the Datastore emulator cannot run")
    found = find_jar(jar)
    if found is None:
        _missing(f"the Cloud SDK emulator {jar.name} is missing (install {package})")
    assert java is not None and found is not None
    return java, found


def _java(java: str, jar: Path, main: str) -> list[str]:
    """Return the start of a command line that runs ``main`` from ``jar``."""
    return [java, "-Xmx1g", "-Duser.language=en", "-cp", str(jar), main]


def start_datastore_emulator(java: str, jar: Path, folder: Path) -> DatastoreEmulator:
    """Start the Firestore emulator in Datastore mode, logging into ``folder``."""
    port = _free_port()
    argv = _java(java, jar, FIRESTORE_MAIN)
    argv += ["--host=127.0.0.1", f"--port={port}", "--database-mode=datastore-mode"]
    return DatastoreEmulator.start(argv, f"127.0.0.1:{port}", folder / "log")


def start_index_checking_emulator(
    java: str, jar: Path, folder: Path
) -> DatastoreEmulator:
    """Start the legacy emulator that enforces ``index.yaml``, in ``folder``."""
    port = _free_port()
    argv = [*_java(java, jar, LEGACY_MAIN), "start", "--host=127.0.0.1"]
    argv += [f"--port={port}", "--testing", "--firestore_in_datastore_mode"]
    argv += ["--require_indexes", f"--index_file={INDEX_FILE}", str(folder / "db")]
    return DatastoreEmulator.start(argv, f"127.0.0.1:{port}", folder / "log")


@pytest.fixture(scope="session")
def datastore_emulator() -> Iterator[str]:
    """Run the Datastore-mode emulator for the session; yield its host:port.

    ``DATASTORE_EMULATOR_HOST`` points at it for the whole session.
    """
    java, jar = _java_and_jar(FIRESTORE_JAR, "google-cloud-cli-firestore-emulator")
    folder = Path(tempfile.mkdtemp(prefix="sparkles-datastore-emulator-"))
    emulator = start_datastore_emulator(java, jar, folder)
    before = os.environ.get(HOST_VARIABLE)
    os.environ[HOST_VARIABLE] = emulator.host
    try:
        yield emulator.host
    finally:
        emulator.stop()
        if before is None:
            os.environ.pop(HOST_VARIABLE, None)
        else:
            os.environ[HOST_VARIABLE] = before
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def index_checking_emulator() -> Iterator[str]:
    """Run the emulator that refuses queries lacking a shipped index; yield host.

    Point a client at it with ``DATASTORE_EMULATOR_HOST`` for one test.
    """
    java, jar = _java_and_jar(LEGACY_JAR, "google-cloud-cli-datastore-emulator")
    folder = Path(tempfile.mkdtemp(prefix="sparkles-index-emulator-"))
    emulator = start_index_checking_emulator(java, jar, folder)
    try:
        yield emulator.host
    finally:
        emulator.stop()
        shutil.rmtree(folder, ignore_errors=True)
