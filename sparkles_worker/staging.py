"""Place a task's inputs in its folder, and read its kept-apart variables.

A task may name a storage object of environment variables that are kept out
of its record (``TaskSpec.secret_env_key``, credentials for the command): it
is read when the task is staged, and its values are never logged nor put in
an error message.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

from sparkles_cas.nodecache import NodeCache
from sparkles_cas.storage import ObjectStorage
from sparkles_core.errors import TaskRunError
from sparkles_core.models import TaskSpec
from sparkles_core.paths import safe_join

__all__ = ["Staged", "read_secret_env", "stage"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Staged:
    """A staged input: where it is and how it looked when placed."""

    size: int
    mtime_ns: int

    def unchanged(self, stat: os.stat_result) -> bool:
        """Return True if ``stat`` shows the file as it was staged."""
        return stat.st_size == self.size and stat.st_mtime_ns == self.mtime_ns


def stage(
    spec: TaskSpec, root: Path, cache: NodeCache, storage: ObjectStorage
) -> dict[str, Staged]:
    """Download every input of ``spec`` under ``root``; return them by path."""
    root.mkdir(parents=True, exist_ok=True)
    staged: dict[str, Staged] = {}
    for download in spec.downloads:
        dest = safe_join(root, download.dst)
        dest.parent.mkdir(parents=True, exist_ok=True)
        if download.digest is not None:
            cache.place(download.digest, dest, download.executable)
        elif download.src is not None:
            storage.get_file(_key_of(storage, download.src), dest)
            if download.executable:
                dest.chmod(0o755)
        stat = dest.stat()
        staged[download.dst] = Staged(stat.st_size, stat.st_mtime_ns)
    safe_join(root, spec.working_dir).mkdir(parents=True, exist_ok=True)
    logger.debug("Staged %d inputs under %s", len(staged), root)
    return staged


def _key_of(storage: ObjectStorage, url: str) -> str:
    """Return the key of ``url`` under the storage root, or the url as a key."""
    root = storage.url.rstrip("/") + "/"
    return url[len(root) :] if url.startswith(root) else url


def read_secret_env(
    spec: TaskSpec, storage: ObjectStorage, task_id: str
) -> dict[str, str]:
    """Return the variables of the task's ``secret_env_key`` object, if any."""
    key = spec.secret_env_key
    if key is None:
        return {}
    data = storage.get_bytes(key)
    try:
        found = json.loads(data)
    except ValueError:
        found = None
    # The message names the object only: its content may be credentials.
    if not isinstance(found, dict) or not all(
        isinstance(name, str) and isinstance(value, str)
        for name, value in found.items()
    ):
        raise TaskRunError(
            f"Task {task_id}: its environment object {key!r} is not a JSON "
            "object of strings; resubmit the job.",
            task_id,
        )
    logger.debug("Task %s: read %d variables from %s", task_id, len(found), key)
    return found
