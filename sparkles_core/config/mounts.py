"""Read the extra disks of each node from ``mount_count`` and ``mount_N_*`` keys.

Mount ``N`` takes ``mount_N_path`` (default ``/mnt/disks/mount_N``),
``mount_N_size_in_gb`` (default 100) and ``mount_N_type`` (default: the
cluster backend picks one for the machine type). A cloud config has one
mount unless told otherwise, since ``work_root_dir`` defaults to the first.
"""

from __future__ import annotations

import logging
import posixpath

from sparkles_core.config.keys import mount_key
from sparkles_core.config.settings import Settings
from sparkles_core.errors import ConfigError
from sparkles_core.models import DataDisk

__all__ = ["read_mounts"]

logger = logging.getLogger(__name__)

_DEFAULT_SIZE_GB = 100


def read_mounts(settings: Settings, default_count: int) -> tuple[DataDisk, ...]:
    """Return the data disks, checking every mount key names a counted mount."""
    numbered = {
        parsed[0]: key for key in settings if (parsed := mount_key(key)) is not None
    }
    count = settings.integer("mount_count")
    if count is None:
        count = max([default_count, *numbered])

    beyond = [n for n in sorted(numbered) if n > count]
    if beyond:
        key = numbered[beyond[0]]
        raise ConfigError(
            f"The key {key!r} in {settings.origin(key)} describes mount "
            f"{beyond[0]}, but mount_count is {count}; raise mount_count or "
            "remove the key.",
            key=key,
        )

    mounts = tuple(_read_mount(settings, n) for n in range(1, count + 1))
    _check_distinct_paths(settings, mounts)
    return mounts


def _read_mount(settings: Settings, n: int) -> DataDisk:
    """Return mount ``n``."""
    name_key, options_key = f"mount_{n}_name", f"mount_{n}_options"
    if name_key in settings:
        raise ConfigError(
            f"The key {name_key!r} in {settings.origin(name_key)} asks to mount "
            "an existing disk or a bucket, which Sparkles does not do; remove "
            "it and list the files a task needs as its downloads.",
            key=name_key,
        )
    if options_key in settings:
        logger.warning(
            "Config key %s in %s: ignored, it only applies to mounting a "
            "bucket; remove it",
            options_key,
            settings.origin(options_key),
        )

    path_key = f"mount_{n}_path"
    path = posixpath.normpath(settings.text(path_key) or f"/mnt/disks/mount_{n}")
    if not path.startswith("/"):
        raise settings.invalid(path_key, "an absolute path such as /mnt/disks/data")
    size = settings.integer(f"mount_{n}_size_in_gb", minimum=1)
    return DataDisk(
        size_gb=_DEFAULT_SIZE_GB if size is None else size,
        mount_path=path,
        type=settings.text(f"mount_{n}_type"),
    )


def _check_distinct_paths(settings: Settings, mounts: tuple[DataDisk, ...]) -> None:
    """Raise ConfigError when two mounts share a folder."""
    seen: set[str] = set()
    for n, mount in enumerate(mounts, start=1):
        if mount.mount_path in seen:
            key = f"mount_{n}_path"
            raise ConfigError(
                f"Mounts share the folder {mount.mount_path!r}: {key!r} in "
                f"{_origin_of(settings, key)} repeats an earlier mount's; give "
                "each mount its own folder.",
                key=key,
            )
        seen.add(mount.mount_path)


def _origin_of(settings: Settings, key: str) -> str:
    """Return where ``key`` was set, or say it took its default."""
    return settings.origin(key) if key in settings else "the defaults"
