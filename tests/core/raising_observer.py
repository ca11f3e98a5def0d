"""A plugin for tests, found through the ``sparkles`` entry points: it raises."""

from __future__ import annotations

from sparkles_core.hooks import hookimpl
from sparkles_core.models import Job


@hookimpl
def sparkles_job_submitted(job: Job) -> None:
    """Fail, as a buggy observer would."""
    raise RuntimeError("observer bug")
