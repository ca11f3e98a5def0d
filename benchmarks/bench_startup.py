"""Start-up time of the commands, against a bare Python start in the same run.

Cloud clients, pydantic models and Snakemake are imported only when a
command needs them, so ``--help`` and ``version`` should cost little more
than starting Python itself::

    .venv/bin/python benchmarks/bench_startup.py --runs 10
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table

BIN = Path(sys.executable).parent
TARGET_S = 0.3

COMMANDS = {
    "python -c pass (baseline)": [sys.executable, "-c", "pass"],
    "sparkles --help": [str(BIN / "sparkles"), "--help"],
    "sparkles version": [str(BIN / "sparkles"), "version"],
    "sparkles-run --help": [str(BIN / "sparkles-run"), "--help"],
    "sparkles-worker --help": [str(BIN / "sparkles-worker"), "--help"],
}


def median_seconds(argv: list[str], runs: int) -> float:
    """Return the median wall time of ``runs`` runs of ``argv``."""
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(argv, stdout=subprocess.DEVNULL, check=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    """Time each command and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per command")
    args = parser.parse_args()

    baseline = None
    table = Table(title=f"Start-up, median of {args.runs} runs")
    for column in ("command", "seconds", "over python", "target"):
        table.add_column(column, justify="left" if column == "command" else "right")
    for name, argv in COMMANDS.items():
        seconds = median_seconds(argv, args.runs)
        baseline = seconds if baseline is None else baseline
        target = "" if argv[0] == sys.executable else f"< {TARGET_S:g} s"
        table.add_row(name, f"{seconds:.3f}", f"+{seconds - baseline:.3f}", target)
    Console().print(table)


if __name__ == "__main__":
    main()
