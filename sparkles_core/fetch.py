"""Bring a task's outputs back from the CAS into a local folder."""

from __future__ import annotations

import logging
from pathlib import Path

from sparkles_cas.cas import CAS
from sparkles_cas.storage import ObjectStorage
from sparkles_core.models import Task, TaskResult
from sparkles_core.paths import safe_join

__all__ = ["fetch_task", "read_result"]

logger = logging.getLogger(__name__)


def read_result(storage: ObjectStorage, task: Task) -> TaskResult | None:
    """Return the ``result.json`` of the task's counting attempt, if any."""
    if task.result_key is None:
        return None
    return TaskResult.model_validate_json(storage.get_bytes(task.result_key))


def fetch_task(storage: ObjectStorage, cas: CAS, task: Task, dest: Path) -> list[Path]:
    """Download the task's outputs under ``dest``; return the local paths.

    Every file is checked against its digest; an existing local file with
    the same path is replaced.
    """
    result = read_result(storage, task)
    if result is None:
        return []
    dest.mkdir(parents=True, exist_ok=True)
    paths = []
    for output in result.outputs:
        target = safe_join(dest, output.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        cas.download(output.digest, target, output.executable)
        paths.append(target)
    logger.info("Task %s: fetched %d files into %s", task.id, len(paths), dest)
    return paths
