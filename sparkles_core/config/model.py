"""The resolved configuration: one backend URL per role and the node settings."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from sparkles_core.models import DataDisk, MachineSpec

__all__ = [
    "EMBEDDED_SCHEMES",
    "Config",
    "ProvisionMode",
    "WhenSubJobExists",
    "url_scheme",
]

ProvisionMode = Literal["preemptible", "normal", "flex"]
WhenSubJobExists = Literal["abort", "confirm", "overwrite"]

# Backends that need no account and no network: SQLite, a folder, processes.
EMBEDDED_SCHEMES = frozenset({"sqlite", "file", "local"})


# Where the CAS lives under the storage root unless cas_url_prefix says.
CAS_FOLDER = "cas"


def url_scheme(url: str) -> str:
    """Return the scheme of a backend URL; a bare name such as ``local`` is one."""
    return url.split("://", 1)[0] if "://" in url else url


class Config(BaseModel):
    """Where jobs are stored and run, and what each node looks like."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    home: Path
    source: Path | None = None
    store_url: str
    storage_url: str
    cluster_url: str = "local"
    project: str | None = None
    region: str | None = None
    zones: tuple[str, ...] = ()
    account: str | None = None
    default_url_prefix: str | None = None
    cas_url_prefix: str | None = None
    default_image: str | None = None
    sparklesworker_image: str | None = None
    machine_type: str = "local"
    provision_mode: ProvisionMode = "preemptible"
    preemptible: bool = True
    max_preemptable_attempts_scale: int = Field(default=2, ge=0)
    boot_volume_in_gb: int = Field(default=40, ge=1)
    boot_volume_type: str | None = None
    worker_linger: float = Field(default=10.0, ge=0)
    work_root_dir: str
    service_account_key: Path | None = None
    when_sub_job_exists: WhenSubJobExists = "overwrite"
    mounts: tuple[DataDisk, ...] = ()
    nodes: int = Field(default=1, ge=1)

    @property
    def cas_url(self) -> str:
        """Return the storage URL of the CAS: ``cas_url_prefix``, else STORAGE/cas."""
        if self.cas_url_prefix:
            return self.cas_url_prefix
        return f"{self.storage_url.rstrip('/')}/{CAS_FOLDER}"

    def machine_spec(self) -> MachineSpec:
        """Return the MachineSpec that nodes started with this config get.

        Local nodes are processes of this machine, which nothing preempts.
        """
        return MachineSpec(
            machine_type=self.machine_type,
            boot_disk_gb=self.boot_volume_in_gb,
            boot_disk_type=self.boot_volume_type,
            data_disks=self.mounts,
            preemptible=self.preemptible and self.cluster_url != "local",
            work_folder=self.work_root_dir,
        )

    @property
    def is_embedded(self) -> bool:
        """Return True when no role uses a cloud backend."""
        urls = (self.store_url, self.storage_url, self.cluster_url)
        return all(url_scheme(url) in EMBEDDED_SCHEMES for url in urls)
