"""The ``sparkles`` group: global options, and errors as one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.conftest import Sample, run_sparkles

pytestmark = pytest.mark.usefixtures("plain_output")


def one_error_line(stderr: str) -> str:
    """Return the only line of ``stderr``, failing if there are more."""
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("sparkles: error: "), stderr
    return lines[0]


# -- --debug ------------------------------------------------------------------------


def test_debug_shows_the_traceback(sample: Sample) -> None:
    done = run_sparkles("--debug", "show", "nope")

    assert done.returncode != 0
    assert "Traceback" in done.stderr
    assert "JobNotFound" in done.stderr


def test_debug_inside_a_task_command_is_not_the_global_flag(home: Path) -> None:
    done = run_sparkles(
        "sub", "-n", "d", "--params", "missing.csv", "--", "run", "--debug"
    )

    assert done.returncode == 2
    assert "missing.csv" in one_error_line(done.stderr)


# -- local file errors --------------------------------------------------------------


def test_list_output_under_a_file_is_one_line(sample: Sample, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("in the way\n")

    done = run_sparkles("list", "sample", "-o", "afile/x.json")

    assert done.returncode == 2
    line = one_error_line(done.stderr)
    assert "Not a directory: 'afile/x.json'" in line
    assert (tmp_path / "afile").read_text() == "in the way\n"


def test_fetch_into_a_file_is_one_line(sample: Sample, tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "1").write_text("in the way\n")

    done = run_sparkles("fetch", "sample", "--dest", "d")

    assert done.returncode == 2
    assert "File exists: 'd/1'" in one_error_line(done.stderr)
    assert (tmp_path / "d" / "1").read_text() == "in the way\n"
