"""Running one command: how it ends and what it used, measured for real."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import psutil

from sparkles_worker import execute

MIB = 1 << 20


def run(command: str, tmp_path: Path, timeout: float | None = None) -> execute.Outcome:
    log = tmp_path / "log.txt"
    env = dict(os.environ)
    return execute.start(command, tmp_path, log, env, timeout).wait()


def test_peak_memory_counts_what_the_command_allocates(tmp_path: Path) -> None:
    allocate = "b = bytearray(200 << 20); import time; time.sleep(1)"

    outcome = run(f"{sys.executable} -c '{allocate}'", tmp_path)

    assert outcome.exit_code == 0
    assert outcome.usage.max_rss_bytes >= 200 * MIB


def test_peak_memory_of_a_small_command_is_not_the_workers(tmp_path: Path) -> None:
    worker_rss = psutil.Process().memory_info().rss

    outcome = run("sleep 1", tmp_path)

    assert outcome.exit_code == 0
    assert 0 < outcome.usage.max_rss_bytes < min(worker_rss / 4, 16 * MIB)


def test_peak_memory_adds_up_the_commands_processes(tmp_path: Path) -> None:
    allocate = "b = bytearray(60 << 20); import time; time.sleep(1.5)"
    one = f"{sys.executable} -c '{allocate}'"

    outcome = run(f"{one} & {one} & {one} & wait", tmp_path)

    assert outcome.exit_code == 0
    assert outcome.usage.max_rss_bytes >= 180 * MIB


def test_command_stopped_at_its_timeout_says_so(tmp_path: Path) -> None:
    outcome = run("sleep 30", tmp_path, timeout=0.5)

    assert outcome.timed_out
    assert outcome.signal is not None and outcome.exit_code is None
    assert outcome.stop_reason == "timed out after 0.5 s"


def test_command_that_ends_in_time_is_not_timed_out(tmp_path: Path) -> None:
    outcome = run("exit 3", tmp_path, timeout=30)

    assert (outcome.timed_out, outcome.exit_code) == (False, 3)
