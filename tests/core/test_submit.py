"""Building jobs from local files and names: validation and dedupe."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from sparkles_core.client import Client
from sparkles_core.config import load_config
from sparkles_core.errors import InputError
from sparkles_core.hooks import hookimpl
from sparkles_core.models import Download, Job, JobSpec, MachineSpec, TaskSpec
from sparkles_core.paths import UnsafePath, safe_join
from sparkles_core.plugins import plugin_manager
from sparkles_core.submit import (
    LocalInput,
    cluster_id_for,
    parse_push,
    validate_job_name,
)

REPO = Path(__file__).resolve().parents[2]
SPARKLES = str(Path(sys.executable).parent / "sparkles")


@pytest.mark.parametrize(
    "name",
    ["a", "job-1", "x" * 63],
    ids=["one-letter", "dash-digit", "longest"],
)
def test_valid_job_names_pass(name: str) -> None:
    assert validate_job_name(name) == name


@pytest.mark.parametrize(
    "name",
    ["", "1job", "Job", "a_b", "x" * 64, "a.b"],
    ids=["empty", "digit-first", "upper", "underscore", "too-long", "dot"],
)
def test_invalid_job_names_are_refused_with_the_rule(name: str) -> None:
    with pytest.raises(InputError, match="lowercase letters, digits and '-'"):
        validate_job_name(name)


@pytest.mark.parametrize(
    ("text", "dst"),
    [
        ("data.csv", "data.csv"),
        ("dir/data.csv", "data.csv"),
        ("a.txt:in/b.txt", "in/b.txt"),
    ],
    ids=["plain", "nested-src", "renamed"],
)
def test_push_forms(text: str, dst: str) -> None:
    assert parse_push(text).dst == dst


@pytest.mark.parametrize(
    "dst",
    ["../up", "a/../../up", "/etc/passwd", "~/x"],
    ids=["parent", "nested-parent", "absolute", "home"],
)
def test_unsafe_destinations_are_refused(dst: str) -> None:
    with pytest.raises(UnsafePath):
        parse_push(f"file.txt:{dst}")
    with pytest.raises(ValidationError):
        Download(dst=dst, digest="0" * 64)


def test_safe_join_refuses_a_link_out_of_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "task"
    root.mkdir()
    (root / "escape").symlink_to(tmp_path)
    with pytest.raises(UnsafePath, match="resolves outside"):
        safe_join(root, "escape/file.txt")


def test_cluster_id_depends_on_needs_not_on_job() -> None:
    small = MachineSpec(machine_type="n2-standard-2")
    big = MachineSpec(machine_type="n2-standard-8")
    assert cluster_id_for(small, None) == cluster_id_for(small, None)
    assert cluster_id_for(small, None) != cluster_id_for(big, None)
    assert cluster_id_for(small, None) != cluster_id_for(small, "ubuntu")


def test_spec_hash_is_stable_and_sensitive() -> None:
    one = JobSpec(name="a", tasks=[TaskSpec(command="echo 1")])
    assert (
        one.spec_hash()
        == JobSpec(name="a", tasks=[TaskSpec(command="echo 1")]).spec_hash()
    )
    assert (
        one.spec_hash()
        != JobSpec(name="a", tasks=[TaskSpec(command="echo 2")]).spec_hash()
    )


def test_folders_upload_recursively_and_dedupe(client: Client, tmp_path: Path) -> None:
    folder = tmp_path / "inputs"
    (folder / "sub").mkdir(parents=True)
    (folder / "one.txt").write_text("same")
    (folder / "sub" / "two.txt").write_text("same")

    downloads, report = client.upload([LocalInput(folder, "data")])
    again, second = client.upload([LocalInput(folder, "data")])

    assert sorted(d.dst for d in downloads) == ["data/one.txt", "data/sub/two.txt"]
    assert len({d.digest for d in downloads}) == 1
    assert (report.uploaded_files, second.uploaded_files, second.uploaded_bytes) == (
        1,
        0,
        0,
    )
    assert again == downloads


def test_a_missing_file_stops_submission_before_any_record(
    client: Client, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match="no such file"):
        client.upload([LocalInput(tmp_path / "absent.txt", "absent.txt")])
    assert client.store.list_jobs() == []


def test_a_job_without_tasks_is_refused(client: Client) -> None:
    with pytest.raises(InputError, match="no tasks"):
        client.submit(JobSpec(name="empty", tasks=[]), "empty")


class RaisingObserver:
    """A plugin whose submission observer fails."""

    @hookimpl
    def sparkles_job_submitted(self, job: Job) -> None:
        raise RuntimeError("observer bug")


def test_a_failing_submission_observer_does_not_fail_the_submission(
    client: Client,
) -> None:
    name = plugin_manager().register(RaisingObserver())
    try:
        job = client.submit(JobSpec(name="seen", tasks=[TaskSpec(command="true")]))
    finally:
        plugin_manager().unregister(name=name)

    assert client.store.get_job(job.id) == job


def test_jobs_of_another_cas_get_a_cluster_of_their_own(
    home: Path, tmp_path: Path
) -> None:
    spec = JobSpec(name="same", tasks=[TaskSpec(command="true")])
    moved = {"cas_url_prefix": f"file://{tmp_path / 'other-cas'}"}
    default, elsewhere = Client(load_config()), Client(load_config(overrides=moved))
    try:
        first = default.submit(spec, "first")
        second = elsewhere.submit(spec, "second")
        launch = elsewhere.launch_for(second)
    finally:
        default.close()
        elsewhere.close()

    assert first.cluster != second.cluster
    assert f"--cas={moved['cas_url_prefix']}" in launch.worker_args("n1")
    plain = default.launch_for(first).worker_args("n1")
    assert not any(arg.startswith("--cas") for arg in plain)


def test_a_failing_observer_is_one_line_at_the_cli(home: Path) -> None:
    site = home.parent / "site"
    info = site / "raising_observer-0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: raising-observer\n")
    (info / "entry_points.txt").write_text(
        "[sparkles]\nraising = tests.core.raising_observer\n"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])}

    done = subprocess.run(
        [SPARKLES, "sub", "--no-wait", "-n", "seen", "true"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )

    assert done.returncode == 0, done.stderr
    assert "hook sparkles_job_submitted failed (RuntimeError: observer bug)" in (
        done.stderr
    )
    assert "Traceback" not in done.stderr
