"""Which files travel with a job, and what the job's task is called."""

from __future__ import annotations

from pathlib import Path

import pytest
from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_sparkles.files import relative_path, upload_rules
from snakemake_executor_plugin_sparkles.submission import job_id_for
from sparkles_core.submit import validate_job_name
from sparkles_worker.outputs import collect_outputs


def test_upload_rules_take_exactly_the_products(tmp_path: Path) -> None:
    products = ["out [1]*.txt", "tree", "logs/a b.log"]
    for name in [
        "out [1]*.txt",
        "out 1.txt",
        "tree/x/y.txt",
        "treehouse.txt",
        "logs/a b.log",
        "logs/other.log",
        ".snakemake/metadata/x",
    ]:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(name)

    found = collect_outputs(tmp_path, upload_rules(products), {})

    names = sorted(path.relative_to(tmp_path).as_posix() for path in found)
    assert names == ["logs/a b.log", "out [1]*.txt", "tree/x/y.txt"]


def test_no_products_upload_nothing(tmp_path: Path) -> None:
    (tmp_path / "stray.txt").write_text("x")

    assert collect_outputs(tmp_path, upload_rules([]), {}) == []


@pytest.mark.parametrize(
    ("given", "expected"),
    [("a/b.txt", "a/b.txt"), ("./a//b.txt", "a/b.txt"), ("{work}/c d.txt", "c d.txt")],
    ids=["relative", "normalised", "absolute-inside"],
)
def test_relative_path_keeps_files_inside(
    tmp_path: Path, given: str, expected: str
) -> None:
    assert relative_path(given.format(work=tmp_path), tmp_path) == expected


@pytest.mark.parametrize("given", ["/etc/passwd", "../outside.txt"])
def test_relative_path_refuses_files_outside(tmp_path: Path, given: str) -> None:
    with pytest.raises(WorkflowError, match="inside the working folder"):
        relative_path(given, tmp_path)


@pytest.mark.parametrize(
    "name", ["count_words", "Group_Rule.With.Dots", "a" * 80, "___"]
)
def test_job_ids_are_valid_names(name: str) -> None:
    job_id = job_id_for("20260101-120000-ab12", 12, name)

    assert validate_job_name(job_id) == job_id
    assert job_id.startswith("sm-20260101-120000-ab12-12-")
