"""The --sparkles-* options: how Snakemake parses them and what they select."""

from __future__ import annotations

from pathlib import Path

import configargparse
import pytest
from snakemake_interface_common.exceptions import WorkflowError
from snakemake_interface_executor_plugins.registry import ExecutorPluginRegistry

from snakemake_executor_plugin_sparkles import ExecutorSettings, common_settings
from snakemake_executor_plugin_sparkles.config import load_plugin_config
from snakemake_executor_plugin_sparkles.settings import parse_flag
from tests.plugin.conftest import OpenStore, RunSnakemake, write_snakefile


def parse(*argv: str) -> ExecutorSettings:
    """Return the settings Snakemake would build from these options."""
    plugin = ExecutorPluginRegistry().get_plugin("sparkles")
    parser = configargparse.ArgumentParser()
    plugin.register_cli_args(parser, "executor")
    settings = plugin.get_settings(parser.parse_args(argv))
    assert isinstance(settings, ExecutorSettings)
    return settings


def test_options_parse_into_typed_settings() -> None:
    settings = parse(
        "--sparkles-nodes=7",
        "--sparkles-preemptible=no",
        "--sparkles-linger=2.5",
        "--sparkles-keep-cluster",
        "--sparkles-config-file=conf/.sparkles",
    )

    assert settings.nodes == 7
    assert settings.preemptible is False
    assert settings.linger == 2.5
    assert settings.keep_cluster is True
    assert settings.config_file == Path("conf/.sparkles")


ENVIRONMENT_CASES = [
    ("config_file", "conf/.sparkles", Path("conf/.sparkles")),
    ("nodes", "7", 7),
    ("machine_type", "n2-highmem-4", "n2-highmem-4"),
    ("image", "us-docker.pkg.dev/p/r/img:1", "us-docker.pkg.dev/p/r/img:1"),
    ("preemptible", "no", False),
    ("linger", "2.5", 2.5),
    ("keep_cluster", "yes", True),
    ("store", "sqlite:///tmp/elsewhere.db", "sqlite:///tmp/elsewhere.db"),
    ("storage", "file:///tmp/elsewhere", "file:///tmp/elsewhere"),
    ("cluster", "gce://p/us-east1-b", "gce://p/us-east1-b"),
    ("status_interval", "0.7", 0.7),
]


@pytest.mark.parametrize(
    ("name", "text", "value"),
    ENVIRONMENT_CASES,
    ids=[case[0] for case in ENVIRONMENT_CASES],
)
def test_every_setting_is_read_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, name: str, text: str, value: object
) -> None:
    monkeypatch.setenv(f"SNAKEMAKE_SPARKLES_{name.upper()}", text)

    assert getattr(parse(), name) == value


def test_environment_cases_cover_every_setting() -> None:
    plugin = ExecutorPluginRegistry().get_plugin("sparkles")

    info = {item["name"]: item["env_var"] for item in plugin.get_settings_info()}

    assert sorted(info) == sorted(case[0] for case in ENVIRONMENT_CASES)
    assert info == {name: f"SNAKEMAKE_SPARKLES_{name.upper()}" for name in info}


def test_option_wins_over_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SNAKEMAKE_SPARKLES_NODES", "3")

    assert parse("--sparkles-nodes=5").nodes == 5


def test_false_in_the_environment_leaves_the_cluster_to_stop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("SNAKEMAKE_SPARKLES_KEEP_CLUSTER", "false")

    assert parse().keep_cluster is False


def test_defaults_need_no_options() -> None:
    settings = parse()

    assert (settings.nodes, settings.preemptible, settings.keep_cluster) == (
        4,
        None,
        False,
    )


@pytest.mark.parametrize(
    ("text", "value"),
    [("yes", True), ("Y", True), ("1", True), ("no", False), ("false", False)],
)
def test_parse_flag_reads_yes_and_no(text: str, value: bool) -> None:
    assert parse_flag(text) is value


def test_parse_flag_refuses_other_words() -> None:
    with pytest.raises(ValueError, match="maybe"):
        parse_flag("maybe")


def test_no_shared_file_system_and_no_storage_provider_needed() -> None:
    assert common_settings.implies_no_shared_fs
    assert common_settings.can_transfer_local_files
    assert not common_settings.job_deploy_sources


def test_option_urls_win_over_the_environment(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPARKLES_STORE", "sqlite:///tmp/from-env.db")
    chosen = ExecutorSettings(store="sqlite:///tmp/from-option.db", linger=3.0)

    config = load_plugin_config(chosen)

    assert config.store_url == "sqlite:///tmp/from-option.db"
    assert config.worker_linger == 3.0
    assert config.home == home


def test_bad_config_is_a_workflow_error(home: Path) -> None:
    Path(".sparkles").write_text("[config]\nno_such_key = 1\n")

    with pytest.raises(WorkflowError, match="no_such_key"):
        load_plugin_config(ExecutorSettings())


@pytest.mark.slow
def test_snakemake_honours_settings_from_the_environment(
    run_snakemake: RunSnakemake, stored: OpenStore
) -> None:
    write_snakefile(
        Path.cwd(),
        """
        rule hello:
            output: "hello.txt"
            shell: "echo hello > {output}"
        """,
    )

    run_snakemake(
        env={
            "SNAKEMAKE_SPARKLES_NODES": "1",
            "SNAKEMAKE_SPARKLES_MACHINE_TYPE": "n2-highmem-2",
            "SNAKEMAKE_SPARKLES_PREEMPTIBLE": "no",
        }
    )

    (job,) = stored().jobs()
    assert job.nodes == 1
    assert (job.machine.machine_type, job.machine.preemptible) == (
        "n2-highmem-2",
        False,
    )
    assert Path("hello.txt").read_text() == "hello\n"
