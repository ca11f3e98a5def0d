"""``sparkles sub``: tasks from parameters, inputs, resubmission, bad input."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from sparkles_core.client import Client
from sparkles_core.errors import InputError
from sparkles_core.models import GPU, Job, JobStatus, Task, TaskStatus
from tests.cli.conftest import Invoke, run_sparkles

ANSI = "\x1b["


def write_csv(path: Path, rows: list[list[str]], bom: bool = True) -> Path:
    """Write ``rows`` (header first) as a UTF-8 CSV file, with a BOM if asked."""
    with path.open("w", encoding="utf-8-sig" if bom else "utf-8", newline="") as f:
        csv.writer(f).writerows(rows)
    return path


def only_job(client: Client) -> Job:
    [job] = client.store.list_jobs()
    return job


def commands(client: Client, job_id: str) -> list[str]:
    return [task.spec.shell_command for task in client.tasks(job_id)]


def downloads(task: Task) -> dict[str, str | None]:
    return {download.dst: download.digest for download in task.spec.downloads}


# -- tasks from parameters ------------------------------------------------------


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["echo {word} > {n}.txt"], ["echo café > 1.txt", "echo two words > 2.txt"]),
        (["echo", "{word}", "{n}"], ["echo 'café' 1", "echo 'two words' 2"]),
    ],
    ids=["shell-line", "argv-tokens-quoted"],
)
def test_params_csv_with_bom_gives_one_task_per_row(
    home: Path, client: Client, invoke: Invoke, command: list[str], expected: list[str]
) -> None:
    write_csv(Path("rows.csv"), [["word", "n"], ["café", "1"], ["two words", "2"]])

    result = invoke("sub", "--no-wait", "-n", "rows", "--params", "rows.csv", *command)

    assert result.exit_code == 0, result.output
    assert commands(client, "rows") == expected
    params = [task.spec.parameters for task in client.tasks("rows")]
    assert params == [{"word": "café", "n": "1"}, {"word": "two words", "n": "2"}]
    assert "sparkles watch rows" in result.output


def test_columns_with_spaces_are_placeholders_and_values_are_stripped(
    home: Path, client: Client, invoke: Invoke
) -> None:
    Path("rows.csv").write_text(" my col , n\n a b , 1 \n")

    result = invoke(
        "sub", "--no-wait", "-n", "sp", "--params", "rows.csv",
        "echo {my col} {n} {n}.txt",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    assert commands(client, "sp") == ["echo a b 1 1.txt"]
    assert client.tasks("sp")[0].spec.parameters == {"my col": "a b", "n": "1"}


def test_seq_numbers_tasks_from_zero(
    home: Path, client: Client, invoke: Invoke
) -> None:
    result = invoke("sub", "--no-wait", "-n", "seq", "--seq", "3", "echo", "{index}")

    assert result.exit_code == 0, result.output
    assert commands(client, "seq") == ["echo 0", "echo 1", "echo 2"]
    assert [t.spec.parameters for t in client.tasks("seq")] == [
        {"index": "0"},
        {"index": "1"},
        {"index": "2"},
    ]


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        ("echo {{index}}", "echo {index}"),
        ("echo ${HOME} {index}", "echo ${HOME} 0"),
        ("cp f.{txt,bak} d", "cp f.{txt,bak} d"),
        ("awk '{print $1}' x", "awk '{print $1}' x"),
        ("echo {index}{index}", "echo 00"),
    ],
    ids=["doubled-braces", "shell-variable", "brace-expansion", "awk-block", "twice"],
)
def test_placeholder_syntax(
    home: Path, client: Client, invoke: Invoke, command: str, expected: str
) -> None:
    result = invoke("sub", "--no-wait", "-n", "ph", "--seq", "1", command)
    assert result.exit_code == 0, result.output
    assert commands(client, "ph") == [expected]


def test_braces_stay_as_written_without_parameters(
    home: Path, client: Client, invoke: Invoke
) -> None:
    result = invoke("sub", "--no-wait", "-n", "one", "echo {x}")
    assert result.exit_code == 0, result.output
    assert commands(client, "one") == ["echo {x}"]
    assert client.tasks("one")[0].spec.parameters == {}


# -- inputs ---------------------------------------------------------------------------


def test_push_forms_place_files_in_every_task(
    home: Path, client: Client, invoke: Invoke
) -> None:
    Path("a.txt").write_text("a")
    Path("b.txt").write_text("b")
    Path("data/deep").mkdir(parents=True)
    Path("data/x.txt").write_text("x")
    Path("data/deep/y.txt").write_text("y")
    Path("listed.txt").write_text("listed")
    Path("inputs.list").write_text("# what the job reads\nlisted.txt:in/l.txt\n\n")

    result = invoke(
        "sub", "--no-wait", "-n", "push", "--seq", "2",
        "-u", "a.txt", "-u", "b.txt:renamed/b.txt", "-u", "data",
        "-u", "data:copy", "-u", "@inputs.list", "true",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    first, second = client.tasks("push")
    assert sorted(downloads(first)) == [
        "a.txt",
        "copy/deep/y.txt",
        "copy/x.txt",
        "data/deep/y.txt",
        "data/x.txt",
        "in/l.txt",
        "renamed/b.txt",
    ]
    assert downloads(first) == downloads(second)
    assert "5 files (10 bytes) uploaded out of 5 files (10 bytes)" in result.output


def test_upload_list_with_a_bom_is_read(
    home: Path, client: Client, invoke: Invoke
) -> None:
    Path("listed.txt").write_text("listed")
    Path("inputs.list").write_text("\ufefflisted.txt:in/l.txt\n", encoding="utf-8")

    result = invoke("sub", "--no-wait", "-n", "bom", "-u", "@inputs.list", "true")

    assert result.exit_code == 0, result.output
    assert list(downloads(client.tasks("bom")[0])) == ["in/l.txt"]


def test_caret_tokens_upload_each_tasks_own_file(
    home: Path, client: Client, invoke: Invoke
) -> None:
    Path("in").mkdir()
    for name in ("p", "q"):
        Path(f"in/{name}.txt").write_text(name)
    write_csv(Path("files.csv"), [["name"], ["p"], ["q"]], bom=False)

    result = invoke(
        "sub", "--no-wait", "-n", "caret", "--params", "files.csv",
        "cat", "^in/{name}.txt",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    first, second = client.tasks("caret")
    assert commands(client, "caret") == ["cat in/p.txt", "cat in/q.txt"]
    assert list(downloads(first)) == ["in/p.txt"]
    assert list(downloads(second)) == ["in/q.txt"]


def test_add_gpu_is_another_name_for_gpu(
    home: Path, client: Client, invoke: Invoke
) -> None:
    result = invoke("sub", "--no-wait", "-n", "g", "--add-gpu", "nvidia-l4", "true")

    assert result.exit_code == 0, result.output
    assert client.job("g").machine.gpus == (GPU(type="nvidia-l4", count=1),)


def test_second_submission_uploads_nothing(
    home: Path, client: Client, invoke: Invoke
) -> None:
    Path("big.bin").write_bytes(b"x" * 5000)
    first = invoke("sub", "--no-wait", "-n", "up", "-u", "big.bin", "true")
    second = invoke("sub", "--no-wait", "-n", "up", "-u", "big.bin", "true")

    assert "1 file (5000 bytes) uploaded out of 1 file (5000 bytes)" in first.output
    assert "0 files (0 bytes) uploaded out of 1 file (5000 bytes)" in second.output


def test_options_reach_the_job_and_its_tasks(
    home: Path, client: Client, invoke: Invoke
) -> None:
    result = invoke(
        "sub", "--no-wait", "-n", "opts", "-m", "n2-standard-4",
        "--nodes", "3", "--cd", "work/here", "--results", "*.csv",
        "--results", "out/**", "--ignore", "*.tmp", "--gpu", "nvidia-tesla-t4:2",
        "true",
    )  # fmt: skip

    assert result.exit_code == 0, result.output
    job = client.job("opts")
    assert (job.image, job.nodes) == (None, 3)
    assert job.machine.machine_type == "n2-standard-4"
    assert job.machine.gpus == (GPU(type="nvidia-tesla-t4", count=2),)
    spec = client.tasks("opts")[0].spec
    assert spec.working_dir == "work/here"
    assert spec.uploads.include == ["*.csv", "out/**"]
    assert spec.uploads.exclude == ["*.tmp"]


def test_image_reaches_the_cluster_which_refuses_it_without_an_engine(
    home: Path,
    client: Client,
    invoke: Invoke,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # No docker on PATH: the local cluster has no engine to run the image.
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))

    result = invoke("sub", "--no-wait", "-n", "img", "-i", "debian:12", "true")

    assert "asks for image 'debian:12'" in str(result.exception)
    assert client.store.list_jobs() == []


def test_refused_replacement_keeps_the_old_job_and_uploads_nothing(
    home: Path,
    client: Client,
    invoke: Invoke,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert invoke("sub", "--no-wait", "-n", "keep", "--seq", "2", "true").exit_code == 0
    Path("new.bin").write_bytes(b"not sent")
    monkeypatch.setenv("PATH", str(tmp_path / "no-programs"))

    result = invoke(
        "sub", "--no-wait", "-n", "keep", "-i", "debian:12", "-u", "new.bin", "true"
    )

    assert "asks for image 'debian:12'" in str(result.exception)
    assert "uploaded" not in result.output
    assert only_job(client).status is JobStatus.SUBMITTED
    statuses = [task.status for task in client.tasks("keep")]
    assert statuses == [TaskStatus.PENDING, TaskStatus.PENDING]


def test_nodes_default_comes_from_config(
    home: Path, client: Client, invoke: Invoke
) -> None:
    result = invoke("-o", "nodes=4", "sub", "--no-wait", "-n", "cfg", "true")
    assert result.exit_code == 0, result.output
    assert client.job("cfg").nodes == 4


# -- bad input --------------------------------------------------------------------


BAD_INPUT = [
    (["-n", "Bad_Name", "true"], "lowercase letters, digits and '-'"),
    (["-n", "x" * 64, "true"], "1 to 63 characters"),
    (["-n", "bad", "--params", "p.csv", "echo", "{nope}"], "no column 'nope'"),
    (["-n", "bad", "--seq", "2", "echo {nope}"], "columns available: index"),
    (["-n", "bad", "-u", "missing.txt", "true"], "no such file"),
    (["-n", "bad", "-u", "present.txt:../x", "true"], "climbs out"),
    (["-n", "bad", "-u", "present.txt:/etc/x", "true"], "is absolute"),
    (["-n", "bad", "-u", "@missing.list", "true"], "upload list"),
    (["-n", "bad", "--params", "empty.csv", "true"], "is empty"),
    (["-n", "bad", "--params", "header.csv", "true"], "no rows"),
    (["-n", "bad", "--params", "ragged.csv", "true"], "line 3: 1 field but"),
    (["-n", "bad", "--params", "latin1.csv", "true"], "not UTF-8"),
    (["-n", "bad", "--params", "missing.csv", "true"], "Cannot read"),
    (["-n", "bad", "--gpu", "t4:0", "true"], "TYPE:COUNT"),
    (["-n", "bad", "--cd", "../up", "true"], "climbs out"),
    (["-n", "bad", "-u", "present.txt:x", "-u", "other.txt:x", "true"], "Two"),
    (["-n", "bad", "no-such-program-here"], "not found on this machine"),
    (["-n", "bad", "--params", "sp.csv", "echo {my_col}"], "available: my col."),
]
BAD_INPUT_IDS = [
    "bad-name",
    "long-name",
    "missing-column",
    "missing-seq-column",
    "missing-file",
    "dst-climbs-out",
    "dst-absolute",
    "missing-list-file",
    "empty-csv",
    "header-only-csv",
    "ragged-csv",
    "latin1-csv",
    "missing-csv",
    "zero-gpus",
    "cd-climbs-out",
    "two-files-one-place",
    "unknown-program",
    "missing-column-beside-a-spaced-one",
]


@pytest.fixture
def bad_input_files(home: Path) -> None:
    """Write the files the bad-input cases refer to."""
    Path("present.txt").write_text("present")
    Path("other.txt").write_text("other")
    write_csv(Path("p.csv"), [["a", "b"], ["1", "2"]])
    write_csv(Path("sp.csv"), [["my col"], ["1"]])
    Path("empty.csv").write_text("")
    Path("header.csv").write_text("a,b\n")
    Path("ragged.csv").write_text("a,b\n1,2\n3\n")
    Path("latin1.csv").write_bytes("a\ncaf\xe9\n".encode("latin-1"))


@pytest.mark.parametrize(("args", "message"), BAD_INPUT, ids=BAD_INPUT_IDS)
@pytest.mark.usefixtures("bad_input_files")
def test_bad_input_is_refused_and_stores_no_job(
    client: Client, invoke: Invoke, args: list[str], message: str
) -> None:
    result = invoke("sub", "--no-wait", *args)

    assert isinstance(result.exception, InputError), result.output
    assert message in str(result.exception)
    assert client.store.list_jobs() == []


def test_missing_column_error_names_the_columns(
    home: Path, client: Client, invoke: Invoke
) -> None:
    write_csv(Path("p.csv"), [["alpha", "beta"], ["1", "2"]])
    result = invoke("sub", "-n", "x", "--params", "p.csv", "echo", "{gamma}")
    assert str(result.exception) == (
        "The command uses {gamma} but parameter file 'p.csv' has no column "
        "'gamma'; columns available: alpha, beta. Write {{ and }} for literal "
        "braces."
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [BAD_INPUT[0], BAD_INPUT[2], BAD_INPUT[4], BAD_INPUT[5]],
    ids=["bad-name", "missing-column", "missing-file", "dst-climbs-out"],
)
@pytest.mark.usefixtures("bad_input_files", "plain_output")
def test_bad_input_exits_2_with_one_line(
    client: Client, args: list[str], message: str
) -> None:
    result = run_sparkles("sub", *args)

    assert result.returncode == 2
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert client.store.list_jobs() == []


def test_params_and_seq_together_is_a_usage_error(
    home: Path, client: Client, invoke: Invoke
) -> None:
    write_csv(Path("p.csv"), [["a"], ["1"]])
    result = invoke("sub", "-n", "x", "--params", "p.csv", "--seq", "2", "true")
    assert result.exit_code == 2
    assert "not both" in result.output
    assert client.store.list_jobs() == []


# -- running and resubmitting ----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    ("command", "code"),
    [("true", 0), ("exit 3", 1)],
    ids=["success-exits-0", "failure-exits-1"],
)
def test_sub_watches_and_exits_by_outcome(
    home: Path, client: Client, invoke: Invoke, command: str, code: int
) -> None:
    result = invoke("sub", "-n", "run", command)

    assert result.exit_code == code, result.output
    assert client.job("run").status.value == ("complete" if code == 0 else "failed")


@pytest.mark.slow
def test_pushed_files_and_caret_scripts_reach_the_task(
    home: Path, client: Client, invoke: Invoke, tmp_path: Path
) -> None:
    Path("data/sub").mkdir(parents=True)
    Path("data/sub/b.txt").write_text("bee\n")
    Path("a.txt").write_text("ay\n")
    Path("tool.sh").write_text("#!/bin/sh\ncat a.txt data/sub/b.txt > out.txt\n")
    Path("tool.sh").chmod(0o755)

    result = invoke("sub", "-n", "files", "-u", "a.txt", "-u", "data", "sh", "^tool.sh")
    assert result.exit_code == 0, result.output
    fetched = client.fetch(client.tasks("files")[0], tmp_path / "got")
    assert [p.name for p in fetched] == ["out.txt"]
    assert (tmp_path / "got" / "out.txt").read_text() == "ay\nbee\n"


def runs_of(log: Path) -> list[str]:
    return sorted(log.read_text().split()) if log.exists() else []


@pytest.mark.slow
def test_retry_reruns_only_the_task_that_failed(
    home: Path, client: Client, invoke: Invoke, tmp_path: Path
) -> None:
    runs, flag = tmp_path / "runs.log", tmp_path / "fixed"
    line = f"echo {{index}} >> {runs}; test {{index}} != 1 || test -e {flag}"
    args = ["sub", "-n", "flaky", "--seq", "3", line]

    first = invoke(*args)
    assert first.exit_code == 1, first.output
    assert "Task flaky.2 failed: exit code 1 (index=1)" in first.output

    flag.touch()
    second = invoke("sub", "--retry", *args[1:])

    assert second.exit_code == 0, second.output
    assert "flaky: 1 task to run again" in second.output
    assert runs_of(runs) == ["0", "1", "1", "2"]
    retried = [
        any(entry.reason == "retried by sub --retry" for entry in task.history)
        for task in client.tasks("flaky")
    ]
    assert retried == [False, True, False]
    assert client.job("flaky").status.value == "complete"


def test_retry_revives_a_killed_job(home: Path, client: Client, invoke: Invoke) -> None:
    args = ["sub", "--no-wait", "-n", "stopped", "--seq", "2", "true"]
    assert invoke(*args).exit_code == 0
    client.kill("stopped")

    result = invoke("sub", "--retry", *args[1:])

    assert result.exit_code == 0, result.output
    assert client.job("stopped").status.value == "submitted"
    counts = client.store.count_tasks("stopped")
    assert counts[TaskStatus.PENDING] == 2


@pytest.mark.slow
def test_skipifexists_keeps_a_job_with_the_same_spec(
    home: Path, client: Client, invoke: Invoke, tmp_path: Path
) -> None:
    runs = tmp_path / "runs.log"
    args = ["sub", "-n", "keep", "--seq", "2", f"echo {{index}} >> {runs}"]
    assert invoke(*args).exit_code == 0
    submitted = client.job("keep").submit_time

    again = invoke("sub", "--skipifexists", *args[1:])

    assert again.exit_code == 0, again.output
    assert "already exists with this spec" in again.output
    assert client.job("keep").submit_time == submitted
    assert runs_of(runs) == ["0", "1"]


def test_skipifexists_replaces_a_job_whose_spec_changed(
    home: Path, client: Client, invoke: Invoke
) -> None:
    assert invoke("sub", "--no-wait", "-n", "chg", "echo", "one").exit_code == 0

    result = invoke("sub", "--no-wait", "--skipifexists", "-n", "chg", "echo", "two")

    assert result.exit_code == 0, result.output
    assert commands(client, "chg") == ["echo two"]


@pytest.mark.slow
def test_skip_if_complete_leaves_a_finished_job_alone(
    home: Path, client: Client, invoke: Invoke
) -> None:
    assert invoke("sub", "-n", "fin", "true").exit_code == 0
    submitted = client.job("fin").submit_time

    result = invoke("sub", "--skip-if-complete", "-n", "fin", "echo", "other")

    assert result.exit_code == 0, result.output
    assert "every task succeeded" in result.output
    assert client.job("fin").submit_time == submitted
    assert commands(client, "fin") == ["true"]


@pytest.mark.slow
def test_skip_if_complete_resubmits_a_job_with_a_failure(
    home: Path, client: Client, invoke: Invoke
) -> None:
    assert invoke("sub", "-n", "bad", "exit 1").exit_code == 1

    result = invoke("sub", "--no-wait", "--skip-if-complete", "-n", "bad", "true")

    assert result.exit_code == 0, result.output
    assert commands(client, "bad") == ["true"]
    assert client.tasks("bad")[0].status is TaskStatus.PENDING


def test_existing_job_is_killed_and_replaced(
    home: Path, client: Client, invoke: Invoke
) -> None:
    assert invoke("sub", "--no-wait", "-n", "rep", "--seq", "3", "true").exit_code == 0

    result = invoke("sub", "--no-wait", "-n", "rep", "echo", "new")

    assert result.exit_code == 0, result.output
    assert "Killed and deleted the previous job rep." in result.output
    assert commands(client, "rep") == ["echo new"]
    assert only_job(client).task_count == 1


def test_abort_policy_refuses_to_replace(
    home: Path, client: Client, invoke: Invoke
) -> None:
    assert invoke("sub", "--no-wait", "-n", "mine", "echo", "old").exit_code == 0

    result = invoke(
        "-o", "when_sub_job_exists=abort", "sub", "--no-wait", "-n", "mine", "true"
    )

    assert isinstance(result.exception, InputError)
    assert "already exists" in str(result.exception)
    assert commands(client, "mine") == ["echo old"]


@pytest.mark.parametrize(
    ("answer", "code", "command"),
    [("n\n", 1, "echo old"), ("y\n", 0, "echo new")],
    ids=["declined-keeps-the-job", "accepted-replaces-it"],
)
def test_confirm_policy_asks_first(
    home: Path, client: Client, invoke: Invoke, answer: str, code: int, command: str
) -> None:
    assert invoke("sub", "--no-wait", "-n", "ask", "echo", "old").exit_code == 0

    result = invoke(
        "-o", "when_sub_job_exists=confirm",
        "sub", "--no-wait", "-n", "ask", "echo", "new",
        input=answer,
    )  # fmt: skip

    assert result.exit_code == code, result.output
    assert "Kill it and replace it?" in result.output
    assert commands(client, "ask") == [command]


@pytest.mark.usefixtures("plain_output")
def test_confirm_policy_without_an_answer_keeps_the_job(
    home: Path, client: Client, invoke: Invoke
) -> None:
    assert invoke("sub", "--no-wait", "-n", "ask", "echo", "old").exit_code == 0

    done = run_sparkles(
        "-o", "when_sub_job_exists=confirm",
        "sub", "--no-wait", "-n", "ask", "echo", "new",
        input="",
    )  # fmt: skip

    assert done.returncode == 1, done.stdout + done.stderr
    assert "Job ask kept; nothing submitted." in done.stdout
    assert "No answer" in done.stderr
    assert "Interrupted" not in done.stdout + done.stderr
    assert commands(client, "ask") == ["echo old"]


# -- through the installed command -------------------------------------------------


@pytest.mark.slow
@pytest.mark.usefixtures("plain_output")
def test_thousand_row_csv_runs_on_two_nodes_then_watch(
    home: Path, client: Client, tmp_path: Path
) -> None:
    rows = [["word", "n"]] + [[f"wörd-{i}", str(i)] for i in range(1000)]
    write_csv(Path("rows.csv"), rows)

    sub = run_sparkles(
        "sub", "--no-wait", "-n", "big", "--params", "rows.csv", "--nodes", "2",
        "sh", "-c", "echo {word} {n} > out.txt",
    )  # fmt: skip
    assert sub.returncode == 0, sub.stderr
    assert "sparkles watch big" in sub.stdout
    watch = run_sparkles("watch", "big")

    assert watch.returncode == 0, watch.stdout + watch.stderr
    assert "Job big: 1000 of 1000 tasks succeeded." in watch.stdout
    assert ANSI not in watch.stdout + watch.stderr
    tasks = client.tasks("big")
    assert all(task.succeeded for task in tasks)
    assert len(client.store.list_nodes(tasks[0].cluster)) <= 2
    for task in tasks:
        dest = tmp_path / "out" / str(task.index)
        client.fetch(task, dest)
        word, n = task.spec.parameters["word"], task.spec.parameters["n"]
        assert (dest / "out.txt").read_text(encoding="utf-8") == f"{word} {n}\n"


@pytest.mark.slow
@pytest.mark.usefixtures("plain_output")
def test_installed_sub_runs_a_job_and_exits_with_its_outcome(
    home: Path, client: Client
) -> None:
    ok = run_sparkles("sub", "-n", "ok", "--seq", "2", "echo", "hi-{index}")
    bad = run_sparkles("sub", "-n", "bad", "sh", "-c", "exit 4")

    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "Job ok: 2 of 2 tasks succeeded." in ok.stdout
    assert bad.returncode == 1, bad.stdout + bad.stderr
    assert "Task bad.1 failed: exit code 4" in bad.stdout
    assert ANSI not in ok.stdout + bad.stdout
