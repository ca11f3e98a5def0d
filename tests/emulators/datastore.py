"""Google's Datastore emulator for the tests, started once per test session.

The emulator is the Firestore emulator of the Cloud SDK run in Datastore mode
(the Debian package ``google-cloud-cli-firestore-emulator``), started straight
from its jar with java on 127.0.0.1 and a free port::

    java -cp <sdk>/platform/cloud-firestore-emulator/cloud-firestore-emulator.jar \\
        com.google.cloud.datastore.emulator.firestore.CloudFirestore \\
        --host=127.0.0.1 --port=PORT --database-mode=datastore-mode

It keeps everything in memory and answers ``GET /`` with ``Ok`` once it is
ready. The fixture sets ``DATASTORE_EMULATOR_HOST`` for the session, which the
Google client (and so every store a test opens, in any process) obeys.

Where java or the jar is missing the tests that need it are skipped, unless
``SPARKLES_REQUIRE_EMULATORS=1`` (as in CI), where that is a failure.
"""

from __future__ import annotations

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

__all__ = ["DatastoreEmulator", "datastore_emulator", "find_emulator_jar"]

JAR = Path("platform/cloud-firestore-emulator/cloud-firestore-emulator.jar")
MAIN_CLASS = "com.google.cloud.datastore.emulator.firestore.CloudFirestore"
HOST_VARIABLE = "DATASTORE_EMULATOR_HOST"

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


def find_emulator_jar() -> Path | None:
    """Return the Firestore emulator's jar from the Cloud SDK, or None."""
    roots = [Path(p) for p in [os.environ.get("CLOUDSDK_ROOT_DIR")] if p]
    roots += [_sdk_root_from_gcloud(), *_SDK_GUESSES]
    for root in roots:
        if root is not None and (root / JAR).is_file():
            return root / JAR
    return None


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
    def start(cls, java: str, jar: Path, log: Path) -> DatastoreEmulator:
        """Start the emulator on a free port and wait until it answers."""
        host = f"127.0.0.1:{_free_port()}"
        argv = [
            java,
            "-Xmx1g",
            "-Duser.language=en",
            "-cp",
            str(jar),
            MAIN_CLASS,
            "--host=127.0.0.1",
            f"--port={host.rpartition(':')[2]}",
            "--database-mode=datastore-mode",
        ]
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
        """Return once ``GET /`` answers, or fail with the emulator's log."""
        deadline = time.monotonic() + _START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"the Datastore emulator exited: {self._tail()}")
            try:
                with urllib.request.urlopen(f"http://{self.host}/", timeout=2) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.2)
        pytest.fail(
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


@pytest.fixture(scope="session")
def datastore_emulator() -> Iterator[str]:
    """Run the Datastore emulator for the session; yield its host:port."""
    java = shutil.which("java")
    if java is None:
        _missing("java is not installed, so the Datastore emulator cannot run")
    jar = find_emulator_jar()
    if jar is None:
        _missing(
            "the Firestore emulator of the Cloud SDK is not installed "
            "(Debian package google-cloud-cli-firestore-emulator)"
        )
    assert java is not None and jar is not None
    folder = Path(tempfile.mkdtemp(prefix="sparkles-datastore-emulator-"))
    emulator = DatastoreEmulator.start(java, jar, folder / "emulator.log")
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
