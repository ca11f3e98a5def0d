"""``sparkles setup``: the project steps, printed or run through gcloud."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from sparkles_core.cli.context import CliContext
from sparkles_core.cli.setup import plan_steps, setup
from sparkles_core.errors import ConfigError, SparklesError

OVERRIDES = (
    "project=my-project",
    "default_url_prefix=gs://my-bucket/sparkles",
    "region=europe-west4",
    "machine_type=n2-standard-4",
)
IMAGE = "europe-west4-docker.pkg.dev/my-project/sparkles/sparkles-worker:"

# A stand-in for gcloud and docker: records its argv, and fails the way the
# test asks (FAIL_ON: a word of the argv; FAIL_SAYS: what it prints).
RECORDER = """#!{python}
import json, os, sys
with open({log!r}, "a") as log:
    log.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
if os.environ.get("FAIL_ON") in sys.argv[1:]:
    print(os.environ.get("FAIL_SAYS", "ERROR: refused"), file=sys.stderr)
    sys.exit(1)
"""


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Put recording ``gcloud`` and ``docker`` first on PATH; return the log."""
    bin_dir, log = tmp_path / "bin", tmp_path / "calls.jsonl"
    bin_dir.mkdir()
    for name in ("gcloud", "docker"):
        tool = bin_dir / name
        tool.write_text(RECORDER.format(python=sys.executable, log=str(log)))
        tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return log


def run_setup(*args: str, overrides: tuple[str, ...] = OVERRIDES) -> Result:
    state = CliContext(overrides=overrides)
    return CliRunner().invoke(setup, list(args), obj=state)


def calls(log: Path) -> list[list[str]]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def test_setup_prints_the_steps_with_the_config_values(home: Path) -> None:
    result = run_setup()

    assert result.exit_code == 0, result.output
    out = result.output
    assert (
        "gcloud services enable compute.googleapis.com datastore.googleapis.com "
        "firestore.googleapis.com storage.googleapis.com" in out
    )
    assert "buckets create gs://my-bucket --location=europe-west4" in out
    assert "--project=my-project" in out
    for role in ("datastore.user", "storage.objectAdmin", "logging.logWriter"):
        assert f"--role=roles/{role}" in out
    assert "gcloud firestore databases create" in out and "datastore-mode" in out
    assert "sparkles_core/store/index.yaml" in out
    assert f"docker push {IMAGE}" in out


def test_nodes_account_gets_no_compute_or_iam_role(home: Path) -> None:
    steps, _ = plan_steps(CliContext(overrides=OVERRIDES).config())

    roles = [arg for step in steps for arg in step.argv if arg.startswith("--role=")]
    assert roles and not [r for r in roles if "compute." in r or "iam." in r]


def test_setup_says_what_the_submitting_account_needs(home: Path) -> None:
    result = run_setup()

    assert result.exit_code == 0, result.output
    email = "sparkles-worker@my-project.iam.gserviceaccount.com"
    assert "roles/iam.serviceAccountUser on it" in result.output
    assert f"add-iam-policy-binding {email}" in result.output
    assert "roles/compute.instanceAdmin.v1 in project 'my-project'" in result.output


def test_setup_apply_runs_every_step_in_order(home: Path, recorded: Path) -> None:
    result = run_setup("--apply")

    assert result.exit_code == 0, result.output
    config = CliContext(overrides=OVERRIDES).config()
    steps, _ = plan_steps(config)
    assert calls(recorded) == [list(step.argv) for step in steps]
    assert "ready for Sparkles" in result.output


def test_setup_apply_stops_at_the_first_failure(
    home: Path, recorded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL_ON", "service-accounts")
    monkeypatch.setenv("FAIL_SAYS", "ERROR: PERMISSION_DENIED")

    result = run_setup("--apply")

    assert isinstance(result.exception, SparklesError)
    message = str(result.exception)
    assert "Setup step 3 (Create the service account" in message
    assert "\n" not in message
    assert [call[1] for call in calls(recorded)] == ["services", "storage", "iam"]


def test_setup_apply_passes_over_what_already_exists(
    home: Path, recorded: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FAIL_ON", "buckets")
    monkeypatch.setenv("FAIL_SAYS", "ERROR: HTTPError 409: already own it")

    result = run_setup("--apply")

    assert result.exit_code == 0, result.output
    assert "already there" in result.output
    assert calls(recorded)[-1][:2] == ["docker", "push"]


def test_setup_without_a_cloud_config_names_the_keys(home: Path) -> None:
    result = run_setup(overrides=())

    assert isinstance(result.exception, ConfigError)
    assert "default_url_prefix" in str(result.exception)
