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


def test_urls_are_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SNAKEMAKE_SPARKLES_STORE", "sqlite:///tmp/elsewhere.db")

    assert parse().store == "sqlite:///tmp/elsewhere.db"


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
