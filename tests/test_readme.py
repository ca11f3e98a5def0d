"""The README's examples do what the README says, run as written."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sparkles_core.client import Client
from tests.cli.conftest import (
    SPARKLES,
    plain_output,  # noqa: F401 - a fixture, used by name
)

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("plain_output")]

README = Path(__file__).resolve().parents[1] / "README.md"
SECTION = "## Manage jobs from the terminal"
API_SECTION = "## From Python, and from other engines"


def first_block(readme: str, section: str, language: str) -> str:
    """Return the first ``language`` code block under the README's ``section``."""
    assert section in readme, f"README.md has no section {section!r}"
    text = readme.split(section, 1)[1]
    fence = f"```{language}\n"
    assert fence in text, f"README.md has no {language} block under {section!r}"
    return text.split(fence, 1)[1].split("\n```", 1)[0] + "\n"


def worked_example(readme: str) -> str:
    """Return the first ``sh`` block of the README's section on ``sparkles``."""
    return first_block(readme, SECTION, "sh")


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


def test_readme_python_example_sorts_the_file(client: Client, tmp_path: Path) -> None:
    script = tmp_path / "example.py"
    script.write_text(first_block(README.read_text(), API_SECTION, "python"))

    done = subprocess.run(
        [sys.executable, str(script)], capture_output=True, text=True, timeout=300
    )

    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert done.stdout.endswith("apple\nfig\npear\n\n")
    assert Path("results/1/sorted.csv").read_text() == "apple\nfig\npear\n"
