"""Snakemake features that depend on how files move, through the real CLI."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugin.conftest import OpenStore, RunSnakemake, write_snakefile

pytestmark = pytest.mark.slow

SPARKLES = str(Path(sys.executable).parent / "sparkles")
SECRET = "s3cret-value-9f1c"


def test_temp_output_is_used_then_removed_and_benchmark_fetched(
    run_snakemake: RunSnakemake,
) -> None:
    write_snakefile(
        Path.cwd(),
        """
        rule all:
            input: "final.txt"

        rule make:
            output: temp("middle.txt")
            shell: "echo made > {output}"

        rule use:
            input: "middle.txt"
            output: "final.txt"
            benchmark: "benchmarks/use.tsv"
            shell: "tr a-z A-Z < {input} > {output}"
        """,
    )

    run_snakemake()

    assert Path("final.txt").read_text() == "MADE\n"
    assert not Path("middle.txt").exists()
    assert Path("benchmarks/use.tsv").read_text().startswith("s\th:m:s")


def test_directory_outputs_come_back_whole(run_snakemake: RunSnakemake) -> None:
    write_snakefile(
        Path.cwd(),
        """
        rule all:
            input: "listing.txt", "empty"

        rule fill:
            output: directory("tree")
            shell:
                "mkdir -p {output}/a/b"
                " && echo 1 > {output}/a/one && echo 2 > {output}/a/b/two"

        rule nothing:
            output: directory("empty")
            shell: "mkdir -p {output}"

        rule list:
            input: "tree"
            output: "listing.txt"
            shell: "cd {input} && find . -type f | sort > ../{output}"
        """,
    )

    run_snakemake()

    assert Path("tree/a/b/two").read_text() == "2\n"
    assert Path("empty").is_dir()
    listing = Path("listing.txt").read_text().split()
    assert listing == ["./.snakemake_timestamp", "./a/b/two", "./a/one"]


def test_group_runs_as_one_task(run_snakemake: RunSnakemake, stored: OpenStore) -> None:
    write_snakefile(
        Path.cwd(),
        """
        rule all:
            input: "b.txt"

        rule a:
            output: "a.txt"
            group: "pair"
            shell: "echo a > {output}"

        rule b:
            input: "a.txt"
            output: "b.txt"
            group: "pair"
            shell: "cat {input} > {output} && echo b >> {output}"
        """,
    )

    run_snakemake()

    assert Path("a.txt").read_text() == "a\n"
    assert Path("b.txt").read_text() == "a\nb\n"
    (job,) = stored().jobs()
    assert job.task_count == 1


def test_group_internal_temp_file_never_comes_back(
    run_snakemake: RunSnakemake, stored: OpenStore
) -> None:
    write_snakefile(
        Path.cwd(),
        """
        rule all:
            input: "final.txt"

        rule make:
            output: temp("scratch.txt")
            group: "inside"
            shell: "echo scratch > {output}"

        rule use:
            input: "scratch.txt"
            output: "final.txt"
            group: "inside"
            shell: "wc -c < {input} > {output}"
        """,
    )

    run_snakemake()

    assert Path("final.txt").read_text().strip() == "8"
    assert not Path("scratch.txt").exists()
    view = stored()
    (task,) = view.tasks()
    assert view.outputs(task) == ["final.txt"]


def test_file_names_with_spaces(run_snakemake: RunSnakemake) -> None:
    Path("my input.txt").write_text("spaced out\n")
    write_snakefile(
        Path.cwd(),
        """
        rule all:
            input: "out dir/my output.txt"

        rule copy:
            input: "my input.txt"
            output: "out dir/my output.txt"
            shell: "cp '{input}' '{output}'"
        """,
    )

    run_snakemake()

    assert Path("out dir/my output.txt").read_text() == "spaced out\n"


def files_holding(folder: Path, text: str) -> list[str]:
    """Return the paths, under ``folder``, of the files that contain ``text``."""
    return sorted(
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and text.encode() in path.read_bytes()
    )


def test_declared_envvars_reach_the_job_but_no_record_or_log(
    run_snakemake: RunSnakemake, stored: OpenStore, home: Path
) -> None:
    write_snakefile(
        Path.cwd(),
        """
        envvars: "SPARKLES_TEST_TOKEN"

        rule all:
            input: "token.txt"

        rule show:
            output: "token.txt"
            shell: "printf %s \\"$SPARKLES_TEST_TOKEN\\" | sha256sum > {output}"
        """,
    )

    result = run_snakemake("--verbose", env={"SPARKLES_TEST_TOKEN": SECRET})

    # A digest of what the rule saw: the value itself would be in its output.
    seen = Path("token.txt").read_text().split()[0]
    assert seen == hashlib.sha256(SECRET.encode()).hexdigest()
    (task,) = stored().tasks()
    assert task.spec.env == {}
    assert task.spec.secret_env_key == f"jobs/{task.job_id}/env.json"
    # The store file, the worker logs and the task's log do not hold it.
    assert files_holding(home, SECRET) == [f"storage/{task.spec.secret_env_key}"]
    assert SECRET not in result.stdout + result.stderr

    deleted = subprocess.run(
        [SPARKLES, "delete", "-y", "*"], capture_output=True, text=True, timeout=120
    )

    assert deleted.returncode == 0, deleted.stderr
    assert files_holding(home, SECRET) == []


def test_retries_use_attempt_dependent_resources(
    run_snakemake: RunSnakemake, stored: OpenStore
) -> None:
    write_snakefile(
        Path.cwd(),
        """
        rule all:
            input: "memory.txt"

        rule grow:
            output: "memory.txt"
            resources: mem_mb=lambda wildcards, attempt: 1000 * attempt
            shell:
                "test {resources.mem_mb} -ge 2000"
                " && echo {resources.mem_mb} > {output}"
        """,
    )

    run_snakemake("--retries", "1")

    assert Path("memory.txt").read_text() == "2000\n"
    first, second = stored().jobs()
    assert (first.machine.memory_mb, second.machine.memory_mb) == (1000, 2000)
    assert first.cluster != second.cluster
    assert second.labels["snakemake-attempt"] == "2"


def test_local_rules_run_on_this_machine(
    run_snakemake: RunSnakemake, stored: OpenStore
) -> None:
    write_snakefile(
        Path.cwd(),
        """
        localrules: all, gather

        rule all:
            input: "report.txt"

        rule remote:
            output: "remote.txt"
            shell: "echo remote > {output}"

        rule gather:
            input: "remote.txt"
            output: "gathered.txt"
            shell: "cat {input} > {output} && echo gathered >> {output}"

        rule report:
            input: "gathered.txt"
            output: "report.txt"
            localrule: True
            shell: "cat {input} > {output} && echo reported >> {output}"
        """,
    )

    run_snakemake()

    assert Path("report.txt").read_text() == "remote\ngathered\nreported\n"
    rules = [job.labels["snakemake-rule"] for job in stored().jobs()]
    assert rules == ["remote"]


@pytest.mark.skipif(
    shutil.which("rsync") is None,
    reason="snakemake-storage-plugin-fs copies with rsync: apt-get install rsync",
)
def test_default_storage_provider_moves_the_files_itself(
    run_snakemake: RunSnakemake, stored: OpenStore, tmp_path: Path
) -> None:
    pytest.importorskip(
        "snakemake_storage_plugin_fs",
        reason="needs pip install snakemake-storage-plugin-fs",
    )
    prefix = tmp_path / "shared"
    (prefix / "data").mkdir(parents=True)
    (prefix / "data" / "in.txt").write_text("hello\n")
    write_snakefile(
        Path.cwd(),
        """
        rule all:
            input: "out.txt"

        rule shout:
            input: "data/in.txt"
            output: "out.txt"
            shell: "tr a-z A-Z < {input} > {output}"
        """,
    )

    run_snakemake(
        "--default-storage-provider", "fs", "--default-storage-prefix", str(prefix)
    )

    assert (prefix / "out.txt").read_text() == "HELLO\n"
    assert not Path("out.txt").exists()
    view = stored()
    (task,) = view.tasks()
    assert [download.dst for download in task.spec.downloads] == ["Snakefile"]
    assert view.outputs(task) == []


def test_git_tracked_file_read_at_parse_time_reaches_the_nodes(
    run_snakemake: RunSnakemake,
) -> None:
    Path("config").mkdir()
    Path("config/samples.tsv").write_text("alpha\nbeta\n")
    write_snakefile(
        Path.cwd(),
        """
        SAMPLES = open("config/samples.tsv").read().split()

        rule all:
            input: expand("out/{s}.txt", s=SAMPLES)

        rule make:
            output: "out/{s}.txt"
            shell: "echo {wildcards.s} > {output}"
        """,
    )
    for argv in (["init", "-q"], ["add", "Snakefile", "config/samples.tsv"]):
        subprocess.run(["git", *argv], check=True)

    run_snakemake()

    assert Path("out/beta.txt").read_text() == "beta\n"
