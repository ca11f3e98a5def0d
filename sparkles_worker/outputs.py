"""Find the files a task left behind and put them in the CAS."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from wcmatch import glob

from sparkles_cas.cas import CAS
from sparkles_core.models import OutputFile, UploadRules
from sparkles_worker.staging import Staged

__all__ = ["collect_outputs", "upload_outputs"]

logger = logging.getLogger(__name__)

_GLOB_FLAGS = glob.GLOBSTAR | glob.DOTGLOB


def collect_outputs(
    root: Path, rules: UploadRules, staged: dict[str, Staged]
) -> list[Path]:
    """Return the files under ``root`` to upload, by the rules.

    Inputs the command did not change are left out, and so is anything
    reached through a link that points outside ``root``.
    """
    resolved_root = root.resolve()
    found: list[Path] = []
    for folder, _, names in os.walk(root):
        for name in names:
            path = Path(folder, name)
            rel = path.relative_to(root).as_posix()
            if not _wanted(rel, rules):
                continue
            if not path.resolve().is_relative_to(resolved_root) or not path.is_file():
                logger.warning("Output %s: skipped, it leaves the task folder", rel)
                continue
            before = staged.get(rel)
            if before is not None and before.unchanged(path.stat()):
                continue
            found.append(path)
    return sorted(found)


def _wanted(rel: str, rules: UploadRules) -> bool:
    return glob.globmatch(rel, rules.include, flags=_GLOB_FLAGS) and not (
        rules.exclude and glob.globmatch(rel, rules.exclude, flags=_GLOB_FLAGS)
    )


def upload_outputs(cas: CAS, root: Path, paths: list[Path]) -> list[OutputFile]:
    """Upload ``paths`` to the CAS; return them as output records."""
    if not paths:
        return []
    report = cas.upload(paths)
    outputs = []
    for path in paths:
        digest = report.digests[path]
        outputs.append(
            OutputFile(
                path=path.relative_to(root).as_posix(),
                digest=digest.digest,
                size=digest.size,
                executable=digest.executable,
            )
        )
    logger.debug(
        "Uploaded %d of %d outputs (%d bytes)",
        report.uploaded_files,
        report.files,
        report.uploaded_bytes,
    )
    return outputs
