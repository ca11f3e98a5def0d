"""What the commands say: counts of one in the singular."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

from sparkles_core.errors import InputError
from sparkles_core.models import Job, TaskSpec
from tests.cli.conftest import Invoke

pytestmark = pytest.mark.usefixtures("plain_output")

PLURAL_OF_ONE = re.compile(r"\b1 (task|file|line|field|column|byte|job)s\b")


def test_counts_of_one_are_singular(
    finished: Callable[..., Job], invoke: Invoke, tmp_path: Path
) -> None:
    finished("one", [TaskSpec(command="echo x | tee x.txt; exit 1")])

    said = "\n".join(
        invoke(*args).output
        for args in [
            ["status", "one", "--failed"],
            ["logs", "one", "--tail", "1"],
            ["list", "one", "-o", str(tmp_path / "one.json")],
            ["fetch", "one", "--dest", str(tmp_path / "fetched")],
            ["summarize", "one"],
            ["reset", "one"],
            ["kill", "one", "--keepcluster"],
            ["delete", "one", "-y"],
        ]
    )

    for phrase in [
        "Job one: 1 failed task\n",
        "last 1 line of",
        "Wrote 1 task of job one",
        "Fetched 2 files of 1 task into",
        "Job one: 1 task ran",
        "Slowest 1 task\n",
        "Job one: 1 task back to pending",
        "Job one: killed 1 unfinished task.",
        "Deleted job one: 1 task, ",
    ]:
        assert phrase in said
    assert not PLURAL_OF_ONE.search(said), said


def test_sub_counts_of_one_are_singular(home: Path, invoke: Invoke) -> None:
    Path("a.txt").write_text("a")
    Path("ragged.csv").write_text("a,b\n1\n")

    sent = invoke("sub", "--no-wait", "-n", "up", "-u", "a.txt", "true")
    ragged = invoke("sub", "--no-wait", "-n", "r", "--params", "ragged.csv", "true")

    assert "1 file (1 byte) uploaded out of 1 file (1 byte)" in sent.output
    assert "Submitted job up: 1 task on cluster" in sent.output
    assert isinstance(ragged.exception, InputError)
    assert "1 field but the header names 2 columns" in str(ragged.exception)
