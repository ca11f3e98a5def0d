"""Measure CAS hashing against ``sha256sum``, and the hash cache's re-scan.

Two figures, each beside its baseline:

- the throughput of ``sparkles_cas.sha256_file`` on one large file, against
  ``sha256sum`` on the same file (best of three runs each, page cache warm);
- the time to digest many small unchanged files with a warm hash cache,
  reopened as a new run would, against the cold scan that filled it.

All files live in a temporary folder that is removed at the end::

    .venv/bin/python benchmarks/bench_hashing.py --size-mb 1024 --files 10000
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from sparkles_cas import CAS, FileStorage, HashCache, sha256_file
from sparkles_cas.hashcache import RACY_WINDOW_NS

MiB = 1 << 20
RUNS = 3


def main() -> None:
    """Run both benchmarks and print their table."""
    args = _parse_args()
    console = Console()
    folder = Path(tempfile.mkdtemp(prefix="sparkles-bench-"))
    try:
        with console.status("Hashing a large file..."):
            ours, baseline = _bench_large_file(folder, args.size_mb)
        with console.status("Scanning small files..."):
            warm, cold = _bench_rescan(folder, args.files)
    finally:
        shutil.rmtree(folder)
    console.print(_table(args.size_mb, args.files, ours, baseline, warm, cold))


def _parse_args() -> argparse.Namespace:
    """Return the command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024, help="large file, MiB")
    parser.add_argument("--files", type=int, default=10_000, help="small files")
    return parser.parse_args()


def _bench_large_file(folder: Path, size_mb: int) -> tuple[float, float]:
    """Return MB/s of our hasher and of sha256sum on a file of ``size_mb``."""
    path = folder / "large.bin"
    block = os.urandom(16 * MiB)
    with open(path, "wb") as file:
        for start in range(0, size_mb * MiB, len(block)):
            file.write(block[: size_mb * MiB - start])

    expected = _sha256sum(path)
    if sha256_file(path) != expected:
        raise SystemExit("sha256_file and sha256sum disagree")
    megabytes = size_mb * MiB / 1e6
    ours = megabytes / _best_time(lambda: sha256_file(path))
    baseline = megabytes / _best_time(lambda: _sha256sum(path))
    path.unlink()
    return ours, baseline


def _bench_rescan(folder: Path, count: int) -> tuple[float, float]:
    """Return seconds of a warm and of a cold scan of ``count`` small files."""
    paths = _write_small_files(folder / "small", count)
    storage = FileStorage(f"file://{folder / 'storage'}")
    db = folder / "hashes.db"

    with HashCache(db) as cache:
        started = time.perf_counter()
        cold_digests = CAS(storage, cache).digest_files(paths)
        cold = time.perf_counter() - started

    def warm_scan() -> None:
        with HashCache(db) as cache:
            if CAS(storage, cache).digest_files(paths) != cold_digests:
                raise SystemExit("warm scan disagrees with cold scan")

    return _best_time(warm_scan), cold


def _write_small_files(folder: Path, count: int) -> list[Path]:
    """Write ``count`` 1 KiB files, 100 per folder; wait until they settle."""
    paths = []
    for index in range(count):
        path = folder / f"{index // 100:04}" / f"{index:06}.dat"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(index.to_bytes(8, "big") * 128)
        paths.append(path)
    # The hash cache does not record files modified within its racy window
    # (see sparkles_cas.hashcache); let the newest file leave it.
    time.sleep(RACY_WINDOW_NS / 1e9 + 0.1)
    return paths


def _sha256sum(path: Path) -> str:
    """Return the digest that ``sha256sum`` prints for ``path``."""
    result = subprocess.run(
        ["sha256sum", str(path)], check=True, capture_output=True, text=True
    )
    return result.stdout.split()[0]


def _best_time(work: Callable[[], object]) -> float:
    """Return the shortest wall time of ``RUNS`` calls of ``work``."""
    times = []
    for _ in range(RUNS):
        started = time.perf_counter()
        work()
        times.append(time.perf_counter() - started)
    return min(times)


def _table(
    size_mb: int, files: int, ours: float, baseline: float, warm: float, cold: float
) -> Table:
    """Return the results as a table."""
    table = Table(title="CAS hashing")
    for name in ("figure", "sparkles", "baseline", "ratio", "target"):
        table.add_column(name, justify="left" if name == "figure" else "right")
    table.add_row(
        f"sha256, MB/s ({size_mb:,} MiB file)",
        f"{ours:,.0f}",
        f"{baseline:,.0f} sha256sum",
        f"{ours / baseline:.2f}",
        ">= 0.90",
    )
    table.add_row(
        f"re-scan, s ({files:,} files)",
        f"{warm:.3f} warm",
        f"{cold:.3f} cold",
        f"{cold / warm:.1f}x faster",
        "< 0.5",
    )
    return table


if __name__ == "__main__":
    main()
