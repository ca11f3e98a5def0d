"""Turn settings into a Config: pick the backends, fill in what keys imply.

With no ``project`` and no ``default_url_prefix``, every role is embedded and
lives under the state folder. Either key selects Google Cloud, which then
needs the project, a ``gs://`` prefix, a region or zones and a machine type;
the store, storage and cluster URLs follow from those unless set on their
own. The cluster gets every zone listed (``gce://PROJECT/ZONE,ZONE``), or
the region alone (``gce://PROJECT/REGION``) when no zone is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import cast, get_args

from sparkles_core.config.credentials import use_key_file
from sparkles_core.config.model import (
    Config,
    ProvisionMode,
    WhenSubJobExists,
    url_scheme,
)
from sparkles_core.config.mounts import read_mounts
from sparkles_core.config.settings import Settings
from sparkles_core.errors import ConfigError

__all__ = ["build_config"]

_GS_PREFIX = re.compile(r"gs://[^/\s]+(/\S*)?")
_ZONE = re.compile(r"[a-z]+(-[a-z]+)*[0-9]+-[a-z]")
_CLOUD_KEYS = ("project", "default_url_prefix")
_WHEN_SUB_JOB_EXISTS: tuple[str, ...] = get_args(WhenSubJobExists)
_PROVISION_MODES: tuple[str, ...] = get_args(ProvisionMode)

# A local node is this machine: a short linger saves nothing but frees the CPUs
# sooner. A cloud node takes minutes to boot, so it waits ten for more work.
_LOCAL_LINGER_S = 10.0
_CLOUD_LINGER_S = 600.0
_CLOUD_WORK_ROOT = "/mnt/disks/mount_1"

_EXAMPLES = {
    "project": "my-project",
    "default_url_prefix": "gs://my-bucket/sparkles",
    "region": "us-central1",
    "machine_type": "n2-standard-4",
}

_URL_FORMS = {
    "store": "a URL such as sqlite:///path/to/store.db or datastore://my-project",
    "storage": "a URL such as file:///path/to/folder or gs://my-bucket/prefix",
    "cluster": "'local' or a URL such as gce://my-project/us-central1-a",
}


@dataclass(frozen=True)
class _Cloud:
    """The Google Cloud keys, checked and completed."""

    project: str
    prefix: str
    region: str
    zones: tuple[str, ...]
    machine_type: str


@dataclass(frozen=True)
class _Roles:
    """The backend URL of each role."""

    store: str
    storage: str
    cluster: str


def build_config(settings: Settings, home: Path, source: Path | None) -> Config:
    """Return the Config that ``settings`` describe.

    Its ``service_account_key`` becomes the one the Google clients of this
    process act with (see :mod:`sparkles_core.config.credentials`).
    """
    cloud = _read_cloud(settings, source) if _wants_cloud(settings) else None
    roles = _read_roles(settings, home, cloud)
    local = url_scheme(roles.cluster) == "local"
    mode, preemptible = _read_provisioning(settings)

    config = Config(
        home=home,
        source=source,
        store_url=roles.store,
        storage_url=roles.storage,
        cluster_url=roles.cluster,
        project=settings.text("project"),
        region=cloud.region if cloud else settings.text("region"),
        zones=cloud.zones if cloud else settings.words("zones"),
        account=settings.text("account"),
        default_url_prefix=cloud.prefix if cloud else None,
        cas_url_prefix=_read_cas_prefix(settings, cloud),
        default_image=settings.text("default_image"),
        sparklesworker_image=settings.text("sparklesworker_image"),
        machine_type=cloud.machine_type if cloud else _local_machine(settings),
        provision_mode=mode,
        preemptible=preemptible,
        max_preemptable_attempts_scale=_read_attempts_scale(settings, preemptible),
        boot_volume_in_gb=_read_boot_volume(settings),
        boot_volume_type=settings.text("boot_volume_type"),
        worker_linger=_read_linger(settings, local),
        work_root_dir=_read_work_root(settings, home, local),
        service_account_key=settings.path("service_account_key"),
        when_sub_job_exists=_read_when_sub_job_exists(settings),
        mounts=read_mounts(settings, default_count=0 if cloud is None else 1),
        nodes=settings.integer("nodes", minimum=1) or 1,
    )
    use_key_file(config.service_account_key)
    return config


def _wants_cloud(settings: Settings) -> bool:
    """Return True when a key that only makes sense on Google Cloud is set."""
    return any(key in settings for key in _CLOUD_KEYS)


def _missing(key: str, source: Path | None, alternative: str = "") -> ConfigError:
    """Return the error for a key that Google Cloud needs, saying how to set it."""
    where = str(source) if source else "a .sparkles file"
    return ConfigError(
        f"Missing key {key!r}: the Google Cloud backends need it; add "
        f"'{key} = {_EXAMPLES[key]}'{alternative} to the [config] section of "
        f"{where}, or pass -o {key}=...",
        key=key,
    )


def _require(settings: Settings, key: str, source: Path | None) -> str:
    """Return the value of a key that Google Cloud needs."""
    value = settings.text(key)
    if value is None:
        raise _missing(key, source)
    return value


def _read_cloud(settings: Settings, source: Path | None) -> _Cloud:
    """Return the checked Google Cloud keys, with the region from the zones."""
    project = _require(settings, "project", source)
    prefix = _require(settings, "default_url_prefix", source).rstrip("/")
    if not _GS_PREFIX.fullmatch(prefix):
        raise settings.invalid("default_url_prefix", "a URL such as gs://bucket/prefix")

    zones = settings.words("zones")
    if not all(_ZONE.fullmatch(zone) for zone in zones):
        raise settings.invalid("zones", "zone names such as us-central1-a")
    region = settings.text("region")
    if region is None and not zones:
        raise _missing("region", source, " (or 'zones = us-central1-a')")
    region = region or zones[0].rsplit("-", 1)[0]
    for zone in zones:
        if zone.rsplit("-", 1)[0] != region:
            raise settings.invalid("zones", f"zones of region {region!r}")

    machine_type = _require(settings, "machine_type", source)
    return _Cloud(project, prefix, region, zones, machine_type)


def _read_roles(settings: Settings, home: Path, cloud: _Cloud | None) -> _Roles:
    """Return each role's URL: its own key if set, else what the others imply."""
    if cloud is None:
        # ``home`` is absolute, so both URLs get three slashes: sqlite:///abs.
        store = f"sqlite://{home}/store.db"
        storage = f"file://{home}/storage"
        cluster = "local"
    else:
        # Every zone given; with none, the region, whose zones the cluster
        # lists through the Compute API: guessing REGION-a fails in regions
        # without a zone "a" (us-east1, europe-west1).
        where = ",".join(cloud.zones) or cloud.region
        store = f"datastore://{cloud.project}"
        storage = cloud.prefix
        cluster = f"gce://{cloud.project}/{where}"

    return _Roles(
        store=settings.url("store", _URL_FORMS["store"]) or store,
        storage=settings.url("storage", _URL_FORMS["storage"]) or storage,
        cluster=settings.url("cluster", _URL_FORMS["cluster"], bare_scheme=True)
        or cluster,
    )


def _read_cas_prefix(settings: Settings, cloud: _Cloud | None) -> str | None:
    """Return where the CAS lives if the config says; None means STORAGE/cas.

    Sparklespray kept its CAS under ``DEFAULT_URL_PREFIX/CAS/``, naming each
    file by its sha256 as Sparkles does: pointing this key there reuses the
    files it holds.
    """
    given = settings.url("cas_url_prefix", "a URL such as gs://my-bucket/CAS")
    return None if given is None else given.rstrip("/")


def _local_machine(settings: Settings) -> str:
    """Return the machine type of an embedded config, ``local`` unless set."""
    return settings.text("machine_type") or "local"


def _read_provisioning(settings: Settings) -> tuple[ProvisionMode, bool]:
    """Return the provision mode and whether nodes are preemptible."""
    flag = settings.boolean("preemptible")
    mode = settings.choice("provision_mode", _PROVISION_MODES)
    if mode is None:
        mode = "normal" if flag is False else "preemptible"
    elif flag is not None and flag != (mode == "preemptible"):
        raise settings.invalid(
            "provision_mode",
            f"a mode that agrees with preemptible={settings.text('preemptible')}"
            " (preemptible for y, normal or flex for n); or drop one of the keys",
        )
    return cast(ProvisionMode, mode), mode == "preemptible"


def _read_attempts_scale(settings: Settings, preemptible: bool) -> int:
    """Return how many preemptible attempts a task gets per standard one."""
    scale = settings.integer("max_preemptable_attempts_scale")
    if not preemptible:
        return 0
    return 2 if scale is None else scale


def _read_boot_volume(settings: Settings) -> int:
    """Return the boot disk size, also accepted under its legacy key."""
    size = settings.integer("boot_volume_in_gb", minimum=1)
    legacy = settings.integer("bootdisksizegb", minimum=1)
    if size is not None and legacy is not None:
        raise settings.invalid(
            "bootdisksizegb", "no value when boot_volume_in_gb is set; keep only that"
        )
    return size or legacy or 40


def _read_linger(settings: Settings, local: bool) -> float:
    """Return how long an idle worker waits for more tasks, in seconds."""
    linger = settings.number("worker_linger")
    if linger is not None:
        return linger
    return _LOCAL_LINGER_S if local else _CLOUD_LINGER_S


def _read_work_root(settings: Settings, home: Path, local: bool) -> str:
    """Return the folder under which nodes run tasks."""
    given = settings.text("work_root_dir")
    if given is not None:
        return given
    return str(home / "work") if local else _CLOUD_WORK_ROOT


def _read_when_sub_job_exists(settings: Settings) -> WhenSubJobExists:
    """Return what to do when a sub-job with the same name already exists."""
    value = settings.choice("when_sub_job_exists", _WHEN_SUB_JOB_EXISTS)
    return cast(WhenSubJobExists, value or "overwrite")
