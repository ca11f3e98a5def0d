"""The example workflows, run as their READMEs say, on the embedded default."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.plugin.conftest import EXAMPLES, OpenStore, RunSnakemake

pytestmark = pytest.mark.slow


def copy_example(name: str) -> Path:
    """Copy an example workflow, less what earlier runs left, into the cwd."""
    lines = (EXAMPLES / ".gitignore").read_text().splitlines()
    leftovers = [line for line in lines if line and not line.startswith("#")]
    target = Path.cwd()
    shutil.copytree(
        EXAMPLES / name,
        target,
        ignore=shutil.ignore_patterns(*leftovers),
        dirs_exist_ok=True,
    )
    return target


def test_hello_greets_everyone(run_snakemake: RunSnakemake) -> None:
    folder = copy_example("hello")

    run_snakemake()

    assert (folder / "greetings.txt").read_text() == (
        "Hello, world!\nHello, sparkles!\n"
    )


def test_fanout_counts_each_sample_with_its_script(
    run_snakemake: RunSnakemake,
) -> None:
    folder = copy_example("fanout")

    run_snakemake()

    summary = (folder / "results" / "summary.tsv").read_text().splitlines()
    assert summary == ["alpha\t12\tthe", "beta\t9\tworkers", "gamma\t10\tfiles"]
    assert (folder / "counts" / "beta.tsv").read_text().startswith("batch\t1\n")
    log = (folder / "logs" / "count_words" / "alpha.log").read_text()
    assert log == "9 distinct words\n"


def test_checkpoint_output_decides_the_next_jobs(
    run_snakemake: RunSnakemake, stored: OpenStore
) -> None:
    folder = copy_example("checkpoint")

    result = run_snakemake()

    assert (folder / "total.txt").read_text() == "385\n"
    squared = sorted(p.name for p in (folder / "squared").iterdir())
    assert squared == ["aa.txt", "ab.txt", "ac.txt"]
    # The checkpoint ran once, never again inside the jobs after it.
    assert result.stderr.count("checkpoint split:") == 1
    view = stored()
    (total,) = [t for t in view.tasks() if t.job_id.endswith("-total")]
    assert "rule total:" in view.log(total)
    assert "checkpoint split" not in view.log(total)
