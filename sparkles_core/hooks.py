"""Hook specifications: how backends and other engines plug into Sparkles.

Plugins are modules or objects with functions marked ``@hookimpl``,
registered through the ``sparkles`` entry-point group. The built-in
backends (:mod:`sparkles_core.backends`) use these same hooks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from sparkles_cas.storage import ObjectStorage
    from sparkles_core.cluster.base import ClusterContext, Provisioner
    from sparkles_core.models import Job, JobSpec, Task, TaskResult, TaskSpec
    from sparkles_core.store.base import Store

__all__ = ["hookimpl", "hookspec"]

PROJECT = "sparkles"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class BackendSpecs:
    """Register backends by URL scheme."""

    @hookspec
    def sparkles_store_backends(self) -> Mapping[str, Callable[[str], Store]]:
        """Return store factories keyed by URL scheme (``sqlite``)."""
        raise NotImplementedError

    @hookspec
    def sparkles_storage_backends(
        self,
    ) -> Mapping[str, Callable[[str], ObjectStorage]]:
        """Return storage factories keyed by URL scheme (``file``)."""
        raise NotImplementedError

    @hookspec
    def sparkles_cluster_backends(
        self,
    ) -> Mapping[str, Callable[[ClusterContext], Provisioner]]:
        """Return provisioner factories keyed by URL scheme (``local``)."""
        raise NotImplementedError


class SubmitSpecs:
    """Events and rewrites on the submitting side."""

    @hookspec
    def sparkles_prepare_task(self, job: JobSpec, task: TaskSpec) -> TaskSpec | None:
        """Return a rewritten task before submission, or None to keep it.

        Implementations run in registration order, each seeing the result of
        the one before.
        """
        raise NotImplementedError

    @hookspec
    def sparkles_job_submitted(self, job: Job) -> None:
        """Observe a job whose tasks are now claimable.

        This and the two hooks below only observe: an implementation that
        raises is logged and skipped, and the others still run.
        """

    @hookspec
    def sparkles_job_finished(self, job: Job, counts: Mapping[str, int]) -> None:
        """Observe a job whose tasks have all finished."""

    @hookspec
    def sparkles_task_finished(self, task: Task) -> None:
        """Observe a task that a monitor saw finish."""


class WorkerSpecs:
    """Events on the worker side."""

    @hookspec
    def sparkles_before_command(self, task: Task, folder: Path) -> None:
        """Run after staging, before the command starts in ``folder``."""

    @hookspec
    def sparkles_after_command(
        self, task: Task, folder: Path, result: TaskResult
    ) -> None:
        """Run after the command and the upload of its outputs.

        ``result`` lists the outputs with their digests; it is written as
        ``result.json``, and the task marked complete, after this returns.
        """
