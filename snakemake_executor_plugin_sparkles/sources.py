"""The workflow's own files that every job needs on its node.

Snakemake names them: the Snakefile and the files it includes, the scripts
and notebooks of ``script:`` and ``notebook:`` rules (with the folders they
sit in), local conda environment files, config files and, in a git working
copy, every file git tracks in the working folder. They are uploaded once
per run; the CAS keeps a file that has not changed from being sent again.

The outputs of finished checkpoints count too: the input functions that
call ``checkpoints.<rule>.get()`` run again inside each job, and without
those outputs the job's Snakemake would run the checkpoint once more.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError

__all__ = ["check_snakefile", "checkpoint_outputs", "workflow_sources"]

logger = logging.getLogger(__name__)


def check_snakefile(snakefile: str, workdir: Path) -> None:
    """Raise WorkflowError unless the Snakefile lies inside ``workdir``."""
    rel = os.path.relpath(snakefile, workdir)
    if rel == ".." or rel.startswith("../"):
        raise WorkflowError(
            f"The Snakefile {snakefile!r} lies outside the working folder "
            f"{str(workdir)!r}, so Sparkles cannot ship it to the nodes; run "
            "snakemake from a folder that holds the whole workflow."
        )


def workflow_sources(workflow: Any, workdir: Path) -> list[str]:
    """Return the workflow's source files as paths relative to ``workdir``."""
    found: set[str] = set()
    for name in workflow.dag.get_sources():
        path = Path(os.path.relpath(name, workdir)) if os.path.isabs(name) else None
        rel = (path or Path(name)).as_posix()
        if rel.startswith("../") or rel == "..":
            logger.warning(
                "Source %s: skipped, it lies outside the working folder %s; "
                "start Snakemake from a folder that holds the whole workflow",
                name,
                workdir,
            )
            continue
        if (workdir / rel).is_file():
            found.add(os.path.normpath(rel))
    return sorted(found)


def checkpoint_outputs(workflow: Any, workdir: Path) -> list[str]:
    """Return the outputs of finished checkpoints that exist in ``workdir``."""
    created = workflow.checkpoints.created_output
    paths = []
    for name in created:
        if getattr(name, "is_storage", False):
            continue
        rel = os.path.relpath(name, workdir) if os.path.isabs(name) else str(name)
        if not rel.startswith("..") and (workdir / rel).exists():
            paths.append(Path(rel).as_posix())
    return sorted(paths)
