"""A second run of a workflow sends no input bytes: the CAS has them all."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

from tests.plugin.conftest import RunSnakemake, write_snakefile

pytestmark = pytest.mark.slow

_UPLOADED = re.compile(r"uploaded (\d+) of (\d+) files, (\d+) bytes")


def uploads(log: str) -> list[tuple[int, int, int]]:
    """Return (files sent, files, bytes sent) of each job submission logged."""
    found = []
    for match in _UPLOADED.finditer(log):
        sent_files, files, sent = (int(group) for group in match.groups())
        found.append((sent_files, files, sent))
    return found


def cas_objects(home: Path) -> set[str]:
    """Return the names of the objects in the CAS."""
    return {path.name for path in (home / "storage" / "cas").iterdir()}


def test_second_run_uploads_nothing(run_snakemake: RunSnakemake, home: Path) -> None:
    Path("data").mkdir()
    for name in ("a", "b"):
        Path("data", f"{name}.bin").write_bytes(os.urandom(256 * 1024))
    write_snakefile(
        Path.cwd(),
        """
        rule all:
            input: "sizes/a.txt", "sizes/b.txt"

        rule size:
            input: "data/{name}.bin"
            output: "sizes/{name}.txt"
            shell: "wc -c < {input} > {output}"
        """,
    )

    first = uploads(run_snakemake().stderr)
    objects = cas_objects(home)
    shutil.rmtree("sizes")
    second = uploads(run_snakemake().stderr)

    assert sum(sent for _, _, sent in first) >= 2 * 256 * 1024
    assert len(second) == 2
    assert all(sent_files == 0 and sent == 0 for sent_files, _, sent in second)
    # Each job's input; the first job also checks the Snakefile.
    assert sorted(files for _, files, _ in second) == [1, 2]
    assert Path("sizes/a.txt").read_text().strip() == str(256 * 1024)
    assert cas_objects(home) == objects
