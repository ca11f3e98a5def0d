"""Which local files a job takes to its node, and which it brings back.

A job's task folder mirrors the local working folder: every file keeps its
path relative to it. Files a storage plugin manages (``storage()`` inputs,
or all files when ``--default-storage-provider`` is given) are left to
Snakemake inside the job, so only the others travel through the CAS. The
files that come back (*products*) are the outputs, logs and benchmark files
of every rule in the job, including the intermediate ones of a group, since
Snakemake checks each rule's outputs when the job ends.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from snakemake_interface_common.exceptions import WorkflowError
from wcmatch import glob

from sparkles_core.errors import InputError
from sparkles_core.models import UploadRules
from sparkles_core.paths import check_relative_path
from sparkles_core.submit import LocalInput

__all__ = [
    "JobFiles",
    "job_files",
    "local_inputs",
    "member_jobs",
    "relative_path",
    "upload_rules",
]

# Snakemake flags of outputs that never exist as files after the job.
_NOT_FILES = ("pipe", "service", "nodelocal")


@dataclass(frozen=True)
class JobFiles:
    """The local files a job needs and the ones it leaves, as relative paths."""

    inputs: tuple[str, ...]
    products: tuple[str, ...]
    logs: tuple[str, ...]
    directories: tuple[str, ...]


def member_jobs(job: Any) -> list[Any]:
    """Return the rule jobs of a job: itself, or the members of a group."""
    return list(job.jobs) if job.is_group() else [job]


def relative_path(path: str, workdir: Path) -> str:
    """Return ``path`` relative to the working folder, or raise WorkflowError."""
    text = os.fspath(path)
    if os.path.isabs(text):
        text = os.path.relpath(text, workdir)
    try:
        return check_relative_path(Path(text).as_posix(), what="file path")
    except InputError as exc:
        raise WorkflowError(
            f"Sparkles cannot move {path!r}: without a shared file system every "
            "input and output must lie inside the working folder "
            f"{str(workdir)!r}. Move the file there, or pass "
            "--default-storage-provider to let a storage plugin move it."
        ) from exc


def _moved_by_us(path: Any) -> bool:
    """Return True for files that no storage plugin manages."""
    return not getattr(path, "is_storage", False)


def _flags(path: Any) -> dict[str, Any]:
    flags = getattr(path, "flags", None)
    return flags if isinstance(flags, dict) else {}


def job_files(job: Any, workdir: Path) -> JobFiles:
    """Return the files that ``job`` (a rule job or a group) moves."""
    inputs = [p for p in job.input if _moved_by_us(p)]
    outputs: list[Any] = []
    logs: list[Any] = []
    directories: list[Any] = []
    for member in member_jobs(job):
        for path in member.output:
            flags = _flags(path)
            if not _moved_by_us(path) or any(flag in flags for flag in _NOT_FILES):
                continue
            outputs.append(path)
            if flags.get("directory") or getattr(path, "is_directory", False):
                directories.append(path)
        if member.benchmark and _moved_by_us(member.benchmark):
            outputs.append(member.benchmark)
        logs.extend(p for p in member.log if _moved_by_us(p))

    return JobFiles(
        inputs=_relative_all(inputs, workdir),
        products=_relative_all([*outputs, *logs], workdir),
        logs=_relative_all(logs, workdir),
        directories=_relative_all(directories, workdir),
    )


def _relative_all(paths: Iterable[Any], workdir: Path) -> tuple[str, ...]:
    """Return each path relative to ``workdir``, once, in order."""
    return tuple(dict.fromkeys(relative_path(path, workdir) for path in paths))


def local_inputs(paths: Iterable[str], workdir: Path) -> list[LocalInput]:
    """Return the uploads for relative ``paths``, each once."""
    return [LocalInput(workdir / path, path) for path in dict.fromkeys(paths)]


def upload_rules(products: Sequence[str]) -> UploadRules:
    """Return rules that upload exactly the products, folders included."""
    include: list[str] = []
    for path in products:
        pattern = glob.escape(path)
        include += [pattern, f"{pattern}/**"]
    return UploadRules(include=include)
