"""The README's worked example does what the README says, run as written."""

from __future__ import annotations

import csv
import os
import subprocess
from pathlib import Path

import pytest

from sparkles_core.client import Client
from tests.cli.conftest import SPARKLES

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("plain_output")]

README = Path(__file__).resolve().parents[2] / "README.md"
SECTION = "## Manage jobs from the terminal"


def worked_example(readme: str) -> str:
    """Return the first ``sh`` block of the README's section on ``sparkles``."""
    assert SECTION in readme, f"README.md has no section {SECTION!r}"
    section = readme.split(SECTION, 1)[1]
    assert "```sh\n" in section, f"README.md has no sh block under {SECTION!r}"
    return section.split("```sh\n", 1)[1].split("\n```", 1)[0] + "\n"


def test_readme_worked_example_writes_every_result(
    client: Client, tmp_path: Path
) -> None:
    script = tmp_path / "example.sh"
    script.write_text(worked_example(README.read_text()))
    # The example's commands are the installed ones, beside this Python.
    bin_dir = str(Path(SPARKLES).parent)
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}

    done = subprocess.run(
        ["sh", "-e", str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    with Path("params.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows
    results = Path("results")
    for index, row in enumerate(rows, start=1):
        sample, n = row["sample"], int(row["n"])
        out = results / str(index) / f"out-{sample}.txt"
        assert out.is_file(), f"the example wrote no {out}"
        assert out.read_text() == f"{sample} {n * n}\n", out
    assert sorted(results.glob("*/out-*.txt")) == sorted(
        results / str(index) / f"out-{row['sample']}.txt"
        for index, row in enumerate(rows, start=1)
    )
