"""``sparkles status, logs, show, list, summarize`` on jobs real workers ran."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import re
from collections.abc import Callable
from pathlib import Path

import pytest

from sparkles_core.cli.summary import Spread
from sparkles_core.cli.tables import format_bytes, format_duration
from sparkles_core.client import Client
from sparkles_core.errors import JobNotFound
from sparkles_core.models import Job, JobSpec, TaskSpec
from tests.cli.conftest import Invoke, Sample, run_sparkles

pytestmark = pytest.mark.usefixtures("plain_output")

ANSI = "\x1b["


def rows_of(output: str) -> dict[str, list[str]]:
    """Return the plain table's rows keyed by their first field."""
    return {line.split()[0]: line.split() for line in output.splitlines() if line}


def blocks_of(output: str) -> dict[str, str]:
    """Return the ``logs`` output split into one block per task id."""
    blocks: dict[str, str] = {}
    for chunk in output.split("Task ")[1:]:
        blocks[chunk.split(":", 1)[0]] = chunk
    return blocks


# -- status -------------------------------------------------------------------


def test_status_counts_each_outcome(sample: Sample, invoke: Invoke) -> None:
    result = invoke("status")

    assert result.exit_code == 0, result.output
    rows = rows_of(result.output)
    assert rows["job"] == [
        "job",
        "status",
        "tasks",
        "pending",
        "claimed",
        "ok",
        "nonzero",
        "failed",
        "killed",
        "nodes",
    ]
    assert rows["sample"] == [
        "sample",
        "pending",
        "5",
        "1",
        "0",
        "1",
        "2",
        "1",
        "0",
        "0",
    ]


def test_status_with_no_jobs_says_so(home: Path, invoke: Invoke) -> None:
    result = invoke("status")
    assert (result.exit_code, result.output) == (0, "No jobs yet.\n")


def test_status_pattern_selects_jobs(client: Client, invoke: Invoke) -> None:
    for name in ("sweep-1", "sweep-2", "other"):
        client.submit(JobSpec(name=name, tasks=[TaskSpec(command="true")]), name)

    by_wildcard = rows_of(invoke("status", "sweep-*").output)
    newest = rows_of(invoke("status", "LAST").output)

    assert set(by_wildcard) == {"job", "sweep-1", "sweep-2"}
    assert set(newest) == {"job", "other"}


def test_status_stats_shows_spreads_from_task_records(
    sample: Sample, invoke: Invoke
) -> None:
    result = invoke("status", "--stats")

    assert result.exit_code == 0, result.output
    assert "Job sample: statistics" in result.output
    lines = result.output.splitlines()
    claims = next(line for line in lines if line.startswith("claims per task"))
    # Five tasks: four claimed once, one never; so the maximum is 1.
    assert claims.split()[3:] == ["5", "0.2", "1", "1", "1"]
    assert any(line.split()[:3] == ["run", "time", "3"] for line in lines)
    assert any(line.split()[:3] == ["peak", "memory", "3"] for line in lines)


def test_status_failed_lists_failures_and_nonzero_exits(
    sample: Sample, invoke: Invoke
) -> None:
    result = invoke("status", "--failed")

    rows = rows_of(result.output.split("failed tasks", 1)[1])
    assert set(rows) == {"task", "sample.2", "sample.3", "sample.4"}
    assert rows["sample.2"][1:3] == ["nonzero", "3"]
    assert rows["sample.3"][1] == "failed"
    assert "staging failed" in " ".join(rows["sample.3"])
    assert rows["sample.4"][1:4] == ["nonzero", "signal", "9"]


def test_status_on_a_terminal_draws_a_table(sample: Sample, invoke: Invoke) -> None:
    result = invoke("status", env={"FORCE_COLOR": "1", "COLUMNS": "120"})

    assert result.exit_code == 0
    assert ANSI in result.output
    assert "─" in result.output


def test_status_on_a_terminal_shows_brackets_as_written(
    finished: Callable[..., Job], invoke: Invoke
) -> None:
    finished("brackets", [TaskSpec(command="echo '[red]x[/red]'; exit 1")])

    result = invoke("status", "--failed", env={"FORCE_COLOR": "1", "COLUMNS": "200"})

    assert "echo '[red]x[/red]'; exit 1" in re.sub(r"\x1b\[[0-9;]*m", "", result.output)


def test_status_piped_is_plain_text(sample: Sample) -> None:
    done = run_sparkles("status", "--stats", "--failed")

    assert done.returncode == 0, done.stderr
    assert ANSI not in done.stdout
    assert done.stdout.splitlines()[0].split()[:2] == ["job", "status"]


@pytest.mark.parametrize(
    "args",
    [
        ["status", "nope"],
        ["logs", "nope"],
        ["show", "nope"],
        ["list", "nope"],
        ["summarize", "nope"],
    ],
    ids=["status", "logs", "show", "list", "summarize"],
)
def test_unknown_job_is_one_line_and_exit_2(sample: Sample, args: list[str]) -> None:
    done = run_sparkles(*args)

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "sparkles: error: No job matches 'nope'; run 'sparkles status' to list "
        "the jobs."
    ]


def test_unknown_job_raises_job_not_found(sample: Sample, invoke: Invoke) -> None:
    result = invoke("logs", "nope")
    assert isinstance(result.exception, JobNotFound)


# -- logs -----------------------------------------------------------------------


def test_logs_show_failures_with_their_reason_and_log(
    sample: Sample, invoke: Invoke
) -> None:
    result = invoke("logs", "sample")

    assert result.exit_code == 0, result.output
    blocks = blocks_of(result.output)
    assert set(blocks) == {"sample.2", "sample.3", "sample.4"}
    assert "nonzero (exit 3)" in blocks["sample.2"]
    assert "command:    echo oops; exit 3" in blocks["sample.2"]
    assert "parameters: name=b size=2" in blocks["sample.2"]
    assert blocks["sample.2"].rstrip().endswith("    oops")
    assert "reason:     staging failed" in blocks["sample.3"]
    assert "log: none (the command never started)" in blocks["sample.3"]
    assert "nonzero (signal 9)" in blocks["sample.4"]


def test_logs_show_history(sample: Sample, invoke: Invoke) -> None:
    block = blocks_of(invoke("logs", "sample").output)["sample.2"]
    history = block.split("history:")[1].split("log (")[0]

    assert "pending: submitted" in history
    assert "claimed by test-node-" in history
    assert "complete by test-node-" in history and "exit code 3" in history


@pytest.mark.parametrize(
    ("args", "first", "last"),
    [([], "11", "30"), (["--tail", "5"], "26", "30"), (["--tail", "0"], "1", "30")],
    ids=["default-20", "tail-5", "whole-log"],
)
def test_logs_all_shows_the_tail_of_every_log(
    sample: Sample, invoke: Invoke, args: list[str], first: str, last: str
) -> None:
    result = invoke("logs", "LAST", "--all", *args)

    blocks = blocks_of(result.output)
    assert set(blocks) == {f"sample.{n}" for n in range(1, 6)}
    lines = blocks["sample.1"].splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("  log ("))
    shown = [line.strip() for line in lines[start + 1 :] if line.strip()]
    assert (shown[0], shown[-1]) == (first, last)
    assert len(shown) == int(last) - int(first) + 1


def test_logs_without_failures_says_so(
    finished: Callable[..., Job], invoke: Invoke
) -> None:
    finished("fine", [TaskSpec(command="true")])
    result = invoke("logs", "fine")
    assert "no failed tasks" in result.output


def test_logs_piped_have_no_ansi(sample: Sample) -> None:
    done = run_sparkles("logs", "LAST", "--all")
    assert done.returncode == 0, done.stderr
    assert ANSI not in done.stdout
    assert "Task sample.1: ok (exit 0)" in done.stdout


# -- show -----------------------------------------------------------------------


def test_show_lists_tasks_with_parameter_columns(
    sample: Sample, invoke: Invoke
) -> None:
    rows = rows_of(invoke("show", "sample").output)

    assert rows["task"] == ["task", "status", "name", "size"]
    assert rows["sample.1"] == ["sample.1", "ok", "a", "1"]
    assert rows["sample.3"] == ["sample.3", "failed", "c", "3"]
    assert rows["sample.5"] == ["sample.5", "pending", "e", "5"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--params", "--csv"], "name,size\na,1\nb,2\nc,3\nd,4\ne,5\n"),
        (
            ["--csv", "-e", "--incomplete"],
            "sparkles_task,sparkles_status,sparkles_exit,name,size\n"
            "sample.5,pending,,e,5\n",
        ),
        (
            ["--csv", "--exitcode"],
            "sparkles_task,sparkles_status,sparkles_exit,name,size\n"
            "sample.1,ok,0,a,1\n"
            "sample.2,nonzero,3,b,2\n"
            "sample.3,failed,,c,3\n"
            "sample.4,nonzero,signal 9,d,4\n"
            "sample.5,pending,,e,5\n",
        ),
    ],
    ids=["params-csv", "incomplete-with-exit", "exit-codes"],
)
def test_show_csv(
    sample: Sample, invoke: Invoke, args: list[str], expected: str
) -> None:
    result = invoke("show", "sample", *args)
    assert (result.exit_code, result.output) == (0, expected)


def colours_of(output: str, value: str) -> set[str]:
    """Return the ANSI codes a terminal table gave the cells showing ``value``."""
    cell = r"\x1b\[([0-9;]+)m" + re.escape(value) + r" *\x1b\[0m"
    return set(re.findall(cell, output))


GREEN, RED, YELLOW = "32", "31", "33"
TERMINAL = {"FORCE_COLOR": "1", "COLUMNS": "200"}


def test_show_on_a_terminal_colours_statuses_and_exit_codes(
    sample: Sample, invoke: Invoke
) -> None:
    output = invoke("show", "sample", "-e", env=TERMINAL).output

    assert colours_of(output, "ok") == {GREEN}
    assert colours_of(output, "nonzero") == {RED}
    assert colours_of(output, "failed") == {RED}
    assert colours_of(output, "pending") == {YELLOW}
    assert colours_of(output, "0") == {GREEN}
    assert colours_of(output, "3") == {RED}
    assert colours_of(output, "signal 9") == {RED}
    assert colours_of(output, "a") == set()  # parameters stay plain


def test_status_on_a_terminal_colours_job_states(
    finished: Callable[..., Job], invoke: Invoke
) -> None:
    finished("good", [TaskSpec(command="true")])
    finished("bad", [TaskSpec(command="exit 1")])
    finished("later", [TaskSpec(command="true")], ran=0)

    output = invoke("status", "--failed", env=TERMINAL).output

    assert YELLOW in colours_of(output, "pending")
    assert colours_of(output, "complete") == {GREEN}
    assert RED in colours_of(output, "failed")
    assert colours_of(output, "nonzero") - {"1"} == {RED}  # "1": a bold header


def test_show_piped_is_plain_text(sample: Sample) -> None:
    done = run_sparkles("show", "LAST", "-e")
    assert done.returncode == 0, done.stderr
    assert ANSI not in done.stdout
    assert done.stdout.splitlines()[0].split() == [
        "task",
        "status",
        "exit",
        "name",
        "size",
    ]


# -- list -----------------------------------------------------------------------


def test_list_dumps_task_records_as_json(sample: Sample, invoke: Invoke) -> None:
    records = json.loads(invoke("list", "sample").output)

    assert [r["id"] for r in records] == [f"sample.{n}" for n in range(1, 6)]
    assert records[1]["exit_code"] == 3
    assert records[3]["signal"] == 9
    assert records[0]["usage"]["max_rss_bytes"] > 0


@pytest.mark.parametrize(
    ("filters", "ids"),
    [
        (["status=complete"], ["sample.1", "sample.2", "sample.4"]),
        (["status=complete", "exit_code!=0"], ["sample.2", "sample.4"]),
        (["spec.parameters.name=c"], ["sample.3"]),
        (["failure_reason!="], ["sample.3"]),
        (["signal=9"], ["sample.4"]),
    ],
    ids=["equal", "and-not-equal", "nested-path", "not-empty", "number"],
)
def test_list_filters_by_dotted_path(
    sample: Sample, invoke: Invoke, filters: list[str], ids: list[str]
) -> None:
    args = [arg for text in filters for arg in ("--filter", text)]
    records = json.loads(invoke("list", "sample", *args).output)
    assert [r["id"] for r in records] == ids


def test_list_fields_as_csv(sample: Sample, invoke: Invoke) -> None:
    result = invoke(
        "list",
        "LAST",
        "--fields",
        "id,spec.parameters.name,exit_code",
        "--format",
        "csv",
    )
    assert result.output == (
        "id,spec.parameters.name,exit_code\n"
        "sample.1,a,0\nsample.2,b,3\nsample.3,c,\nsample.4,d,\nsample.5,e,\n"
    )


def test_list_csv_flattens_nested_fields(sample: Sample, invoke: Invoke) -> None:
    rows = list(
        csv.DictReader(io.StringIO(invoke("list", "sample", "--format", "csv").output))
    )

    assert len(rows) == 5
    assert rows[0]["spec.parameters.size"] == "1"
    assert int(rows[0]["usage.max_rss_bytes"]) > 0
    assert json.loads(rows[0]["history"])[0]["status"] == "pending"


def test_list_writes_a_file(sample: Sample, invoke: Invoke, tmp_path: Path) -> None:
    out = tmp_path / "tasks.json"
    result = invoke("list", "sample", "--fields", "id", "-o", str(out))

    assert result.output == f"Wrote 5 tasks of job sample to {out}.\n"
    assert json.loads(out.read_text())[0] == {"id": "sample.1"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--filter", "status"], "has no '=' or '!='"),
        (["--filter", "bogus=1"], "'bogus' is not a field of a task record"),
        (["--fields", "id,nope.x"], "'nope.x' is not a field"),
        (["--fields", ","], "give at least one field"),
        (["--format", "xml"], "'xml' is not one of"),
    ],
    ids=[
        "filter-without-operator",
        "unknown-filter-field",
        "unknown-field",
        "no-fields",
        "bad-format",
    ],
)
def test_list_bad_options_are_usage_errors(
    sample: Sample, invoke: Invoke, args: list[str], message: str
) -> None:
    in_process = invoke("list", "sample", *args)
    piped = run_sparkles("list", "sample", *args)

    assert in_process.exit_code == 2 and message in in_process.output
    assert piped.returncode == 2 and message in piped.stderr
    assert "Traceback" not in piped.stderr and piped.stdout == ""


def test_list_piped_json_parses(sample: Sample) -> None:
    done = run_sparkles("list", "LAST", "--filter", "status=failed")
    assert done.returncode == 0, done.stderr
    assert [r["id"] for r in json.loads(done.stdout)] == ["sample.3"]


# -- summarize ----------------------------------------------------------------


def test_summarize_reports_spreads_and_slowest_tasks(
    sample: Sample, invoke: Invoke
) -> None:
    result = invoke("summarize", "sample")

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Job sample: 3 tasks ran"
    for metric in ("queue wait", "run time", "CPU time", "peak memory"):
        row = next(line for line in lines if line.startswith(metric))
        assert row.split()[2] == "3", row
    slowest = rows_of(result.output.split("Slowest 3 tasks", 1)[1])
    assert set(slowest) == {"task", "sample.1", "sample.2", "sample.4"}


def test_summarize_job_that_never_ran(client: Client, invoke: Invoke) -> None:
    client.submit(JobSpec(name="idle", tasks=[TaskSpec(command="true")]), "idle")
    assert invoke("summarize", "idle").output == "No task of job idle has run yet.\n"


def test_summarize_answers_to_its_sparklespray_name(
    sample: Sample, invoke: Invoke
) -> None:
    assert (
        invoke("summarize-job-metrics", "sample").output
        == invoke("summarize", "sample").output
    )
    assert "summarize-job-metrics" not in invoke("--help").output


def test_summarize_piped_is_plain_text(sample: Sample) -> None:
    done = run_sparkles("summarize", "LAST")
    assert done.returncode == 0, done.stderr
    assert ANSI not in done.stdout
    assert "Slowest 3 tasks" in done.stdout


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([7.0], Spread(1, 7.0, 7.0, 7.0, 7.0)),
        ([float(n) for n in range(101)], Spread(101, 5.0, 50.0, 95.0, 100.0)),
        ([3.0, 1.0, 2.0], Spread(3, 1.1, 2.0, 2.9, 3.0)),
    ],
    ids=["one", "zero-to-hundred", "unsorted"],
)
def test_spread_interpolates_quantiles(values: list[float], expected: Spread) -> None:
    spread = Spread.of(values)
    assert spread is not None
    assert dataclasses.astuple(spread) == pytest.approx(dataclasses.astuple(expected))


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, ""),
        (0.0042, "4 ms"),
        (4.2, "4.20 s"),
        (185, "3 m 05 s"),
        (7260, "2 h 01 m"),
    ],
    ids=["none", "ms", "seconds", "minutes", "hours"],
)
def test_format_duration(seconds: float | None, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize(
    ("size", "text"),
    [(512, "512 B"), (1536, "1.5 KiB"), (39_354_368, "37.5 MiB")],
    ids=["bytes", "kib", "mib"],
)
def test_format_bytes(size: int, text: str) -> None:
    assert format_bytes(size) == text
