"""The configuration keys Sparkles understands, and the check that refuses others.

Key names are those of Sparklespray's ``.sparkles`` files, so existing files
keep working, plus Sparkles' own ``store``, ``storage``, ``cluster`` and
``nodes``. Mounts are numbered from 1: ``mount_1_path``, ``mount_2_type``...
"""

from __future__ import annotations

import difflib
import logging
import re
from collections.abc import Mapping

from sparkles_core.config.settings import Setting
from sparkles_core.errors import ConfigError

__all__ = ["KNOWN_KEYS", "MOUNT_FIELDS", "check_keys", "mount_key"]

logger = logging.getLogger(__name__)

KNOWN_KEYS = frozenset(
    {
        "account",
        "boot_volume_in_gb",
        "boot_volume_type",
        "bootdisksizegb",
        "cache_db_path",
        "cas_url_prefix",
        "cluster",
        "debug_log_prefix",
        "default_image",
        "default_url_prefix",
        "machine_type",
        "max_preemptable_attempts_scale",
        "monitor_port",
        "mount_count",
        "nodes",
        "preemptible",
        "project",
        "provision_mode",
        "region",
        "service_account_key",
        "sparklesworker_image",
        "storage",
        "store",
        "when_sub_job_exists",
        "work_root_dir",
        "worker_linger",
        "zones",
    }
)

MOUNT_FIELDS = ("path", "type", "size_in_gb", "name", "options")

# Keys accepted so that Sparklespray files load, but with nothing to drive.
_IGNORED = {
    "monitor_port": "workers open no inbound ports; logs travel through storage",
    "cache_db_path": "the hash cache lives in the Sparkles state folder",
    "debug_log_prefix": "node logs are kept under each task's attempt",
}

_REFUSED = {
    "default_resource_cpu": "choose the CPUs with machine_type instead",
    "default_resource_memory": "choose the memory with machine_type instead",
}

_MOUNT_KEY = re.compile(r"mount_([1-9][0-9]*)_(" + "|".join(MOUNT_FIELDS) + ")")


def mount_key(key: str) -> tuple[int, str] | None:
    """Return the mount number and field of a ``mount_N_field`` key, or None."""
    match = _MOUNT_KEY.fullmatch(key)
    if match is None:
        return None
    return int(match.group(1)), match.group(2)


def check_keys(items: Mapping[str, Setting]) -> None:
    """Raise ConfigError for the first key that is unknown or refused."""
    for key in sorted(items):
        setting = items[key]
        if key in _REFUSED:
            raise ConfigError(
                f"The key {key!r} in {setting.origin} is no longer supported; "
                f"{_REFUSED[key]}.",
                key=key,
            )
        if key in _IGNORED:
            logger.debug(
                "Config key %s in %s: ignored, %s", key, setting.origin, _IGNORED[key]
            )
        elif key not in KNOWN_KEYS and mount_key(key) is None:
            raise ConfigError(_unknown_key_message(key, setting.origin), key=key)


def _unknown_key_message(key: str, origin: str) -> str:
    """Return the message for an unknown key, with the closest known one."""
    number = re.match(r"mount_([1-9][0-9]*)_", key)
    n = number.group(1) if number else "1"
    candidates = sorted(KNOWN_KEYS | {f"mount_{n}_{f}" for f in MOUNT_FIELDS})
    close = difflib.get_close_matches(key, candidates, n=1)
    if close:
        return f"Unknown key {key!r} in {origin}; did you mean {close[0]!r}?"
    templates = sorted(KNOWN_KEYS | {f"mount_N_{f}" for f in MOUNT_FIELDS})
    return f"Unknown key {key!r} in {origin}; known keys: {', '.join(templates)}."
