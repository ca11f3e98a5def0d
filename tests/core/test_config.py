"""Tests for loading the configuration: files, overrides, environment, errors."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import platformdirs
import pytest

from sparkles_cas.gcs import GCSStorage
from sparkles_core.config import Config, find_config_file, load_config, parse_override
from sparkles_core.config.credentials import (
    google_credentials,
    read_key,
    use_key_file,
)
from sparkles_core.errors import ConfigError
from sparkles_core.models import DataDisk, MachineSpec
from sparkles_core.plugins import open_storage
from sparkles_core.store.datastore_client import Datastore, DatastoreLocation
from tests.fakes.service_account import EMAIL, write_key

CLOUD = """\
[config]
project = my-project
default_url_prefix = gs://my-bucket/sparkles/
zones = us-central1-b, us-central1-c
machine_type = n2-standard-4
default_image = us-docker.pkg.dev/my-project/images/tools:1
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return {"SPARKLES_HOME": str(home)}


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    folder = tmp_path / "project"
    folder.mkdir()
    return folder


def write(folder: Path, text: str, name: str = ".sparkles") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(text)
    return path


def load(
    workdir: Path,
    env: dict[str, str],
    text: str | None = None,
    *,
    config_file: Path | None = None,
    overrides: dict[str, str] | None = None,
) -> Config:
    """Load the config seen from ``workdir``, first writing ``text`` there."""
    if text is not None:
        write(workdir, text)
    return load_config(config_file, overrides, cwd=workdir, environ=env)


# -- embedded defaults -------------------------------------------------------


def test_no_file_gives_embedded_backends_under_home(
    workdir: Path, env: dict[str, str], home: Path
) -> None:
    config = load(workdir, env)

    assert config.source is None
    assert config.home == home
    assert config.store_url == f"sqlite://{home}/store.db"
    assert config.storage_url == f"file://{home}/storage"
    assert config.store_url.startswith("sqlite:///")
    assert config.storage_url.startswith("file:///")
    assert config.cluster_url == "local"
    assert config.is_embedded


def test_embedded_defaults_suit_local_workers(
    workdir: Path, env: dict[str, str], home: Path
) -> None:
    config = load(workdir, env)

    assert config.machine_type == "local"
    assert config.worker_linger == 10
    assert config.work_root_dir == str(home / "work")
    assert config.mounts == ()
    assert config.nodes == 1
    assert config.preemptible is True
    assert config.max_preemptable_attempts_scale == 2
    assert config.boot_volume_in_gb == 40
    assert config.when_sub_job_exists == "overwrite"
    assert config.project is None
    assert config.cas_url_prefix is None
    assert config.cas_url == f"file://{home}/storage/cas"


def test_home_defaults_to_user_data_folder(
    workdir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    monkeypatch.setattr(platformdirs, "user_data_dir", lambda name: str(data / name))

    config = load_config(cwd=workdir, environ={})

    assert config.home == data / "sparkles"
    assert config.store_url == f"sqlite://{data}/sparkles/store.db"


def test_relative_sparkles_home_is_taken_from_cwd(workdir: Path) -> None:
    config = load_config(cwd=workdir, environ={"SPARKLES_HOME": "state"})

    assert config.home == workdir / "state"


def test_config_is_frozen(workdir: Path, env: dict[str, str]) -> None:
    config = load(workdir, env)

    with pytest.raises(ValueError, match="frozen"):
        config.nodes = 4


# -- finding the file --------------------------------------------------------


def test_file_is_found_in_a_parent_folder(workdir: Path, env: dict[str, str]) -> None:
    path = write(workdir, "[config]\nnodes = 3\n")
    below = workdir / "a" / "b"
    below.mkdir(parents=True)

    config = load_config(cwd=below, environ=env)

    assert config.source == path
    assert config.nodes == 3


def test_kubeque_file_is_used_when_there_is_no_sparkles_file(
    workdir: Path, env: dict[str, str]
) -> None:
    path = write(workdir, "[config]\nnodes = 2\n", name=".kubeque")

    config = load(workdir, env)

    assert config.source == path
    assert config.nodes == 2


def test_sparkles_file_wins_over_kubeque_in_the_same_folder(workdir: Path) -> None:
    write(workdir, "[config]\n", name=".kubeque")
    path = write(workdir, "[config]\n")

    assert find_config_file(workdir) == path


def test_nearest_folder_wins(workdir: Path) -> None:
    write(workdir, "[config]\n")
    inner = write(workdir / "sub", "[config]\n", name=".kubeque")

    assert find_config_file(workdir / "sub") == inner


def test_explicit_file_is_read_instead_of_the_nearest(
    workdir: Path, env: dict[str, str], tmp_path: Path
) -> None:
    write(workdir, "[config]\nnodes = 2\n")
    other = write(tmp_path / "elsewhere", "[config]\nnodes = 5\n", name="my.ini")

    config = load(workdir, env, config_file=other)

    assert config.source == other
    assert config.nodes == 5


def test_explicit_relative_file_is_taken_from_cwd(
    workdir: Path, env: dict[str, str]
) -> None:
    path = write(workdir, "[config]\nnodes = 4\n", name="team.ini")

    config = load(workdir, env, config_file=Path("team.ini"))

    assert config.source == path


# -- layering ----------------------------------------------------------------


def test_overrides_apply_on_top_of_the_file(workdir: Path, env: dict[str, str]) -> None:
    text = "[config]\nnodes = 2\nworker_linger = 30\n"

    config = load(workdir, env, text, overrides={"nodes": "8"})

    assert config.nodes == 8
    assert config.worker_linger == 30


def test_empty_override_clears_a_value_from_the_file(
    workdir: Path, env: dict[str, str]
) -> None:
    config = load(workdir, env, "[config]\nnodes = 2\n", overrides={"nodes": ""})

    assert config.nodes == 1


def test_override_keys_match_file_keys_regardless_of_case(
    workdir: Path, env: dict[str, str]
) -> None:
    config = load(workdir, env, overrides={"Nodes": "6"})

    assert config.nodes == 6


def test_environment_overrides_role_urls_last(
    workdir: Path, env: dict[str, str]
) -> None:
    text = "[config]\nstore = sqlite:///from/file.db\ncluster = local\n"
    env |= {"SPARKLES_STORE": "sqlite:///from/env.db", "SPARKLES_CLUSTER": "pool"}

    config = load(workdir, env, text, overrides={"store": "sqlite:///from/override.db"})

    assert config.store_url == "sqlite:///from/env.db"
    assert config.cluster_url == "pool"
    assert config.storage_url.startswith("file:///")


def test_role_keys_replace_one_role_each(
    workdir: Path, env: dict[str, str], home: Path
) -> None:
    config = load(workdir, env, "[config]\nstorage = gs://bucket/sparkles\n")

    assert config.storage_url == "gs://bucket/sparkles"
    assert config.store_url == f"sqlite://{home}/store.db"
    assert not config.is_embedded


def test_cas_url_prefix_moves_the_cas(workdir: Path, env: dict[str, str]) -> None:
    text = "[config]\ncas_url_prefix = gs://old-bucket/sparklespray/CAS/\n"

    config = load(workdir, env, text)

    assert config.cas_url == "gs://old-bucket/sparklespray/CAS"


# -- Google Cloud ------------------------------------------------------------


def test_cloud_config_derives_role_urls(workdir: Path, env: dict[str, str]) -> None:
    config = load(workdir, env, CLOUD)

    assert config.store_url == "datastore://my-project"
    assert config.storage_url == "gs://my-bucket/sparkles"
    assert config.cas_url == "gs://my-bucket/sparkles/cas"
    assert config.cluster_url == "gce://my-project/us-central1-b,us-central1-c"
    assert config.region == "us-central1"
    assert config.zones == ("us-central1-b", "us-central1-c")
    assert not config.is_embedded


def test_cloud_config_uses_node_defaults(workdir: Path, env: dict[str, str]) -> None:
    config = load(workdir, env, CLOUD)

    assert config.machine_type == "n2-standard-4"
    assert config.worker_linger == 600
    assert config.work_root_dir == "/mnt/disks/mount_1"
    assert config.mounts == (DataDisk(size_gb=100, mount_path="/mnt/disks/mount_1"),)
    assert config.default_image == "us-docker.pkg.dev/my-project/images/tools:1"


def test_cloud_cluster_of_a_region_alone_names_no_zone(
    workdir: Path, env: dict[str, str]
) -> None:
    # europe-west1 has no zone "a": the cluster lists the region's zones.
    text = CLOUD.replace(
        "zones = us-central1-b, us-central1-c", "region = europe-west1"
    )

    config = load(workdir, env, text)

    assert config.cluster_url == "gce://my-project/europe-west1"
    assert config.zones == ()


def test_local_cluster_can_work_for_a_cloud_store(
    workdir: Path, env: dict[str, str]
) -> None:
    env["SPARKLES_CLUSTER"] = "local"

    config = load(workdir, env, CLOUD)

    assert config.store_url == "datastore://my-project"
    assert config.cluster_url == "local"
    assert config.worker_linger == 10


def test_zones_accept_commas_and_blanks(workdir: Path, env: dict[str, str]) -> None:
    text = CLOUD.replace("us-central1-b, us-central1-c", "us-central1-a us-central1-f,")

    config = load(workdir, env, text)

    assert config.zones == ("us-central1-a", "us-central1-f")


# -- values ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("y", True),
        ("Yes", True),
        ("true", True),
        ("1", True),
        ("n", False),
        ("no", False),
        ("FALSE", False),
        ("0", False),
    ],
)
def test_preemptible_accepts_yes_and_no_forms(
    workdir: Path, env: dict[str, str], text: str, expected: bool
) -> None:
    config = load(workdir, env, overrides={"preemptible": text})

    assert config.preemptible is expected


def test_non_preemptible_nodes_get_no_preemptible_attempts(
    workdir: Path, env: dict[str, str]
) -> None:
    text = "[config]\npreemptible = n\nmax_preemptable_attempts_scale = 3\n"

    config = load(workdir, env, text)

    assert config.max_preemptable_attempts_scale == 0
    assert config.provision_mode == "normal"


def test_flex_provisioning_is_not_preemptible(
    workdir: Path, env: dict[str, str]
) -> None:
    config = load(workdir, env, overrides={"provision_mode": "flex"})

    assert config.preemptible is False
    assert config.provision_mode == "flex"


def test_legacy_boot_disk_key_sets_the_boot_volume(
    workdir: Path, env: dict[str, str]
) -> None:
    config = load(workdir, env, "[config]\nbootdisksizegb = 80\n")

    assert config.boot_volume_in_gb == 80


def test_service_account_key_is_relative_to_the_file(
    workdir: Path, env: dict[str, str]
) -> None:
    config = load(workdir, env, "[config]\nservice_account_key = keys/sa.json\n")

    assert config.service_account_key == workdir / "keys" / "sa.json"


def test_sparklespray_only_keys_are_accepted(
    workdir: Path, env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    text = (
        "[config]\nmonitor_port = 6032\ncache_db_path = .kubeque-cached\n"
        "debug_log_prefix = gs://b/node-logs\n"
    )
    caplog.set_level(logging.DEBUG, logger="sparkles_core.config")

    config = load(workdir, env, text)

    assert config.is_embedded
    assert "monitor_port" in caplog.text


def test_percent_signs_are_kept_verbatim(workdir: Path, env: dict[str, str]) -> None:
    config = load(workdir, env, "[config]\ndefault_image = img:%(tag)s\n")

    assert config.default_image == "img:%(tag)s"


# -- mounts and machine spec -------------------------------------------------


def test_mounts_are_read_from_numbered_keys(workdir: Path, env: dict[str, str]) -> None:
    text = CLOUD + (
        "mount_count = 2\n"
        "mount_1_size_in_gb = 250\nmount_1_type = pd-ssd\n"
        "mount_2_path = /mnt/scratch/\n"
    )

    config = load(workdir, env, text)

    assert config.mounts == (
        DataDisk(size_gb=250, mount_path="/mnt/disks/mount_1", type="pd-ssd"),
        DataDisk(size_gb=100, mount_path="/mnt/scratch"),
    )


def test_mount_count_follows_the_highest_mount_key(
    workdir: Path, env: dict[str, str]
) -> None:
    config = load(workdir, env, "[config]\nmount_2_path = /data\n")

    assert [m.mount_path for m in config.mounts] == ["/mnt/disks/mount_1", "/data"]


def test_mount_count_zero_gives_no_mounts(workdir: Path, env: dict[str, str]) -> None:
    config = load(workdir, env, CLOUD + "mount_count = 0\n")

    assert config.mounts == ()


def test_mount_options_are_ignored_with_a_warning(
    workdir: Path, env: dict[str, str], caplog: pytest.LogCaptureFixture
) -> None:
    config = load(workdir, env, CLOUD + "mount_1_options = ro\n")

    assert len(config.mounts) == 1
    assert "mount_1_options" in caplog.text


def test_machine_spec_carries_the_node_settings(
    workdir: Path, env: dict[str, str]
) -> None:
    text = (
        CLOUD + "boot_volume_in_gb = 60\nboot_volume_type = pd-ssd\n"
        "preemptible = no\nmount_1_size_in_gb = 500\n"
    )

    spec = load(workdir, env, text).machine_spec()

    assert spec == MachineSpec(
        machine_type="n2-standard-4",
        boot_disk_gb=60,
        boot_disk_type="pd-ssd",
        data_disks=(DataDisk(size_gb=500, mount_path="/mnt/disks/mount_1"),),
        preemptible=False,
        work_folder="/mnt/disks/mount_1",
    )


def test_embedded_machine_spec_is_local(workdir: Path, env: dict[str, str]) -> None:
    spec = load(workdir, env).machine_spec()

    assert spec.machine_type == "local"
    assert spec.data_disks == ()
    assert spec.boot_disk_gb == 40


# -- errors ------------------------------------------------------------------

FILE_ERRORS = [
    ("machine_typ = n2", "machine_typ", "did you mean 'machine_type'"),
    ("frobnicate = 1", "frobnicate", "known keys: account, "),
    ("mount_1_sise_in_gb = 5", "mount_1_sise_in_gb", "'mount_1_size_in_gb'"),
    ("default_resource_cpu = 2", "default_resource_cpu", "machine_type"),
    ("default_resource_memory = 4G", "default_resource_memory", "machine_type"),
    ("preemptible = maybe", "preemptible", "'maybe'; expected y or n"),
    ("boot_volume_in_gb = forty", "boot_volume_in_gb", "'forty'; expected a whole"),
    ("nodes = 0", "nodes", "'0'; expected a whole number of at least 1"),
    ("worker_linger = -5", "worker_linger", "'-5'; expected a number"),
    ("worker_linger = nan", "worker_linger", "'nan'; expected a number"),
    ("store = /var/store.db", "store", "'/var/store.db'; expected a URL"),
    ("cluster = gce:/x", "cluster", "'gce:/x'; expected 'local' or a URL"),
    ("when_sub_job_exists = skip", "when_sub_job_exists", "'skip'; expected one"),
    ("provision_mode = normal\npreemptible = y", "provision_mode", "'normal'"),
    ("bootdisksizegb = 5\nboot_volume_in_gb = 6", "bootdisksizegb", "'5'"),
    ("mount_1_path = data", "mount_1_path", "'data'; expected an absolute path"),
]
FILE_ERROR_IDS = [
    "unknown-key-suggests",
    "unknown-key-lists",
    "unknown-mount-key-suggests",
    "refused-cpu",
    "refused-memory",
    "bad-bool",
    "bad-int",
    "zero-nodes",
    "negative-linger",
    "nan-linger",
    "store-not-url",
    "cluster-not-url",
    "bad-choice",
    "conflicting-provisioning",
    "both-boot-keys",
    "relative-mount-path",
]


@pytest.mark.parametrize(("lines", "key", "part"), FILE_ERRORS, ids=FILE_ERROR_IDS)
def test_bad_file_setting_is_a_config_error_naming_the_key(
    workdir: Path, env: dict[str, str], lines: str, key: str, part: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(workdir, env, f"[config]\n{lines}\n")

    assert caught.value.key == key
    assert repr(key) in str(caught.value)
    assert part in str(caught.value)


# Overrides on top of CLOUD; an empty value removes the key from the file.
CLOUD_ERRORS = [
    ({"project": ""}, "project", "add 'project = my-project'"),
    ({"default_url_prefix": "s3://b"}, "default_url_prefix", "expected a URL such"),
    ({"default_url_prefix": "gs://"}, "default_url_prefix", "'gs://'; expected"),
    ({"machine_type": ""}, "machine_type", "add 'machine_type = n2-standard-4'"),
    ({"zones": ""}, "region", "'region = us-central1' (or 'zones = us-central1-a')"),
    ({"region": "us-east1"}, "zones", "expected zones of region 'us-east1'"),
    ({"zones": "central"}, "zones", "'central'; expected zone names"),
    ({"mount_count": "1", "mount_2_path": "/d"}, "mount_2_path", "mount_count is 1"),
    ({"mount_1_name": "gs://b"}, "mount_1_name", "as its downloads"),
    ({"mount_2_path": "/mnt/disks/mount_1/"}, "mount_2_path", "share the folder"),
    ({"store": "datastore:x"}, "store", "'datastore:x'; expected a URL"),
    ({"frobnicate": "1"}, "frobnicate", "in the override -o frobnicate=1"),
]
CLOUD_ERROR_IDS = [
    "missing-project",
    "prefix-not-gs",
    "prefix-without-bucket",
    "missing-machine-type",
    "missing-region-and-zones",
    "zones-outside-region",
    "bad-zone-name",
    "mount-beyond-count",
    "bucket-mount",
    "shared-mount-path",
    "bad-override-url",
    "unknown-override-key",
]


@pytest.mark.parametrize(
    ("overrides", "key", "part"), CLOUD_ERRORS, ids=CLOUD_ERROR_IDS
)
def test_bad_cloud_setting_is_a_config_error_naming_the_key(
    workdir: Path, env: dict[str, str], overrides: dict[str, str], key: str, part: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(workdir, env, CLOUD, overrides=overrides)

    assert caught.value.key == key
    assert repr(key) in str(caught.value)
    assert part in str(caught.value)


def test_prefix_without_project_asks_for_the_project(
    workdir: Path, env: dict[str, str]
) -> None:
    with pytest.raises(ConfigError, match="Missing key 'project'") as caught:
        load(workdir, env, overrides={"default_url_prefix": "gs://b/p"})

    assert caught.value.key == "project"


@pytest.mark.parametrize(
    ("name", "value", "key"),
    [
        ("SPARKLES_STORE", "store.db", "store"),
        ("SPARKLES_STORAGE", "my bucket", "storage"),
        ("SPARKLES_CLUSTER", "gce:/p", "cluster"),
    ],
    ids=["store", "storage", "cluster"],
)
def test_bad_role_variable_names_the_variable(
    workdir: Path, env: dict[str, str], name: str, value: str, key: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load(workdir, env | {name: value})

    assert caught.value.key == key
    assert f"environment variable {name}: {value!r}" in str(caught.value)


def test_error_names_the_file_it_comes_from(workdir: Path, env: dict[str, str]) -> None:
    with pytest.raises(ConfigError, match="preemptible") as caught:
        load(workdir, env, "[config]\npreemptible = maybe\n")

    assert str(workdir / ".sparkles") in str(caught.value)


def test_file_without_config_section_says_to_add_it(
    workdir: Path, env: dict[str, str]
) -> None:
    with pytest.raises(ConfigError, match=r"add a line '\[config\]'"):
        load(workdir, env, "[settings]\nproject = p\n")


def test_file_without_any_section_is_a_config_error(
    workdir: Path, env: dict[str, str]
) -> None:
    with pytest.raises(ConfigError, match=r"\.sparkles"):
        load(workdir, env, "project = p\n")


def test_missing_explicit_file_names_the_path(
    workdir: Path, env: dict[str, str]
) -> None:
    missing = workdir / "nope.ini"

    with pytest.raises(ConfigError, match="does not exist") as caught:
        load(workdir, env, config_file=missing)

    assert repr(str(missing)) in str(caught.value)


# -- overrides ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param(
            "machine_type=n2-standard-8", ("machine_type", "n2-standard-8"), id="plain"
        ),
        pytest.param(" nodes = 4 ", ("nodes", "4"), id="blanks"),
        pytest.param(
            "default_image=img:tag=1",
            ("default_image", "img:tag=1"),
            id="equals-in-value",
        ),
        pytest.param("project=", ("project", ""), id="empty-value"),
    ],
)
def test_override_splits_key_and_value(text: str, expected: tuple[str, str]) -> None:
    assert parse_override(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("machine_type", id="no-equals"),
        pytest.param("=n2", id="no-key"),
        pytest.param("machine type=n2", id="blank-in-key"),
        pytest.param("", id="empty"),
    ],
)
def test_bad_override_says_the_expected_form(text: str) -> None:
    with pytest.raises(ConfigError, match="key=value") as caught:
        parse_override(text)

    assert repr(text) in str(caught.value)


# -- credentials -------------------------------------------------------------


@pytest.fixture
def adc_only(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Talk to Google itself, not an emulator; forget any key afterwards."""
    for name in (
        "DATASTORE_EMULATOR_HOST",
        "STORAGE_EMULATOR_HOST",
        "SPARKLES_COMPUTE_ENDPOINT",
    ):
        monkeypatch.delenv(name, raising=False)
    yield
    use_key_file(None)


def test_configured_key_is_what_every_google_client_acts_with(
    workdir: Path, env: dict[str, str], adc_only: None
) -> None:
    write_key(workdir / "sa.json")

    config = load(workdir, env, CLOUD + "service_account_key = sa.json\n")
    credentials = google_credentials()
    store = Datastore(DatastoreLocation.from_url(config.store_url))
    storage = open_storage(config.storage_url)

    assert credentials is not None
    assert credentials.service_account_email == EMAIL
    assert store._client._credentials is credentials
    assert isinstance(storage, GCSStorage)
    assert storage._client._credentials is credentials
    assert read_key(workdir / "sa.json").credentials is credentials, "read once"


def test_without_a_key_the_clients_find_their_own_credentials(
    workdir: Path, env: dict[str, str], adc_only: None
) -> None:
    write_key(workdir / "sa.json")
    load(workdir, env, CLOUD + "service_account_key = sa.json\n")

    load(workdir, env, CLOUD)

    assert google_credentials() is None


SECRET = "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC-not-a-real-key-but-secret"


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        (None, "it cannot be read"),
        ('{"private_key": "' + SECRET + '", oops', "it is not JSON"),
        ('{"type": "service_account", "private_key": "' + SECRET + '"}', "it has no"),
        (
            json.dumps(
                {
                    "type": "service_account",
                    "client_email": EMAIL,
                    "token_uri": "https://oauth2.googleapis.com/token",
                    "private_key": f"-----BEGIN PRIVATE KEY-----\n{SECRET}\n"
                    "-----END PRIVATE KEY-----\n",
                }
            ),
            "its private_key is not a valid key",
        ),
    ],
    ids=["missing", "not-json", "no-email", "bad-private-key"],
)
def test_unusable_key_is_one_line_that_never_shows_the_key(
    workdir: Path,
    env: dict[str, str],
    adc_only: None,
    caplog: pytest.LogCaptureFixture,
    content: str | None,
    problem: str,
) -> None:
    if content is not None:
        (workdir / "sa.json").write_text(content)
    config = load(workdir, env, CLOUD + "service_account_key = sa.json\n")

    with pytest.raises(ConfigError) as caught:
        Datastore(DatastoreLocation.from_url(config.store_url))

    message = str(caught.value)
    assert problem in message and repr(str(workdir / "sa.json")) in message
    assert caught.value.key == "service_account_key"
    assert "\n" not in message
    assert SECRET not in message and SECRET not in caplog.text
    error = caught.value  # nothing chained that a --debug traceback would show
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__


def test_cli_with_an_unusable_key_prints_one_line_without_the_key(
    workdir: Path, env: dict[str, str]
) -> None:
    (workdir / "sa.json").write_text('{"private_key": "' + SECRET + '", oops')
    write(workdir, CLOUD + "service_account_key = sa.json\n")
    cli = Path(sys.executable).with_name("sparkles")

    done = subprocess.run(
        [str(cli), "status"],
        cwd=workdir,
        env={**os.environ, **env, "DATASTORE_EMULATOR_HOST": ""},
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert done.returncode != 0
    assert "service_account_key file" in done.stderr
    assert "Traceback" not in done.stderr
    assert SECRET not in done.stdout + done.stderr
