"""Put a job's inputs and the workflow's sources into the CAS.

The sources are uploaded with the first job and their downloads reused for
every later one; each job's inputs are uploaded as it is submitted. Either
way the CAS sends only content that storage lacks, and its hash cache keeps
an unchanged file from being read again, so a second run of a workflow
uploads nothing.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from snakemake_interface_common.exceptions import WorkflowError

from snakemake_executor_plugin_sparkles.files import JobFiles, local_inputs
from snakemake_executor_plugin_sparkles.sources import (
    checkpoint_outputs,
    workflow_sources,
)
from sparkles_cas.cas import UploadReport
from sparkles_cas.errors import StorageError
from sparkles_core.client import Client
from sparkles_core.errors import SparklesError
from sparkles_core.models import Download

__all__ = ["Stager", "guarded"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_NOTHING = UploadReport(
    files=0, bytes=0, uploaded_files=0, uploaded_bytes=0, digests={}
)


def guarded(
    what: str,
    action: Callable[[], _T],
    also: tuple[type[Exception], ...] = (),
) -> _T:
    """Return ``action()``; raise its Sparkles errors, or ``also``, as WorkflowError."""
    caught: tuple[type[Exception], ...] = (SparklesError, StorageError, *also)
    try:
        return action()
    except caught as exc:
        raise WorkflowError(f"Sparkles could not {what}: {exc}") from exc


class Stager:
    """Upload what jobs need and return it as task downloads."""

    def __init__(self, client: Client, workflow: Any, workdir: Path) -> None:
        self._client, self._workflow, self._workdir = client, workflow, workdir
        self._lock = threading.Lock()
        self._sources: list[Download] | None = None

    def stage(self, files: JobFiles) -> tuple[list[Download], UploadReport]:
        """Upload the job's inputs; return all its downloads and the report.

        The first job's report counts the workflow's sources too.
        """
        sources, sources_report = self._source_downloads()
        paths = [*checkpoint_outputs(self._workflow, self._workdir), *files.inputs]
        inputs, report = self._upload(paths, "upload the job's inputs")
        merged = {download.dst: download for download in sources}
        merged.update((download.dst, download) for download in inputs)
        return list(merged.values()), _combine(sources_report, report)

    def _source_downloads(self) -> tuple[list[Download], UploadReport]:
        """Return the sources' downloads, and a report if this call sent them."""
        with self._lock:
            if self._sources is not None:
                return self._sources, _NOTHING
            paths = workflow_sources(self._workflow, self._workdir)
            self._sources, report = self._upload(paths, "upload the sources")
            logger.debug("Sources: %d files", len(self._sources))
            return self._sources, report

    def _upload(
        self, paths: Sequence[str], what: str
    ) -> tuple[list[Download], UploadReport]:
        if not paths:
            return [], _NOTHING
        inputs = local_inputs(paths, self._workdir)
        return guarded(what, lambda: self._client.upload(inputs))


def _combine(first: UploadReport, second: UploadReport) -> UploadReport:
    """Return one report for two uploads."""
    return UploadReport(
        files=first.files + second.files,
        bytes=first.bytes + second.bytes,
        uploaded_files=first.uploaded_files + second.uploaded_files,
        uploaded_bytes=first.uploaded_bytes + second.uploaded_bytes,
        digests={**first.digests, **second.digests},
    )
