"""``sparkles setup`` through the ``sparkles`` command (printing only)."""

from __future__ import annotations

import itertools
import re
from pathlib import Path

import pytest

from tests.cli.conftest import Invoke, run_sparkles
from tests.cli.test_main import one_error_line

pytestmark = pytest.mark.usefixtures("plain_output")

OVERRIDES = (
    "-o", "project=my-project",
    "-o", "default_url_prefix=gs://my-bucket/sparkles",
    "-o", "region=europe-west4",
    "-o", "machine_type=n2-standard-4",
)  # fmt: skip


def steps_of(output: str) -> list[str]:
    """Return the commands of a printed plan: the line under each '# N.'."""
    lines = output.splitlines()
    return [
        command
        for heading, command in itertools.pairwise(lines)
        if re.match(r"# \d+\. ", heading)
    ]


def test_setup_through_the_group_prints_the_plan(home: Path, invoke: Invoke) -> None:
    result = invoke(*OVERRIDES, "setup")

    assert result.exit_code == 0, result.output
    commands = steps_of(result.output)
    assert len(commands) > 5
    assert any("my-bucket" in line for line in commands)
    assert sum("--project=my-project" in line for line in commands) > 5


def test_installed_setup_prints_the_same_plan(home: Path, invoke: Invoke) -> None:
    done = run_sparkles(*OVERRIDES, "setup")

    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout
    assert steps_of(done.stdout) == steps_of(invoke(*OVERRIDES, "setup").output)


def test_installed_setup_help_names_apply(home: Path) -> None:
    done = run_sparkles("setup", "--help")

    assert done.returncode == 0, done.stderr
    assert "--apply" in done.stdout


def test_installed_setup_without_the_cloud_keys_is_one_line(home: Path) -> None:
    done = run_sparkles("setup")

    assert done.returncode == 2
    assert "needs the keys project, region" in one_error_line(done.stderr)
