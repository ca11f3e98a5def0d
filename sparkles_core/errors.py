"""Errors raised by the Sparkles engine.

Every error a user can cause or meet derives from :class:`SparklesError`; the
command-line front ends print its message as one line and exit non-zero.
Storage errors come from :mod:`sparkles_cas.errors`, which depends on nothing
of ours, and are caught beside this tree::

    SparklesError
    ├── ConfigError          bad configuration, with the key to fix
    ├── InputError           bad user input: a missing file, an unsafe path,
    │                        an invalid name, a malformed parameter table
    ├── BackendError         a backend URL that cannot be used
    ├── StoreError           the job and task store failed
    │   └── JobNotFound      no job with that id or pattern
    ├── ClusterError         nodes could not be started or stopped
    ├── JobFailed            a monitor stopped a job that was burning nodes
    └── TaskRunError         the worker could not stage, run or upload a task
"""

from __future__ import annotations

__all__ = [
    "BackendError",
    "ClusterError",
    "ConfigError",
    "InputError",
    "JobFailed",
    "JobNotFound",
    "SparklesError",
    "StoreError",
    "TaskRunError",
]


class SparklesError(Exception):
    """Base of every error the engine raises on purpose."""


class ConfigError(SparklesError):
    """A configuration key is unknown, malformed or missing."""

    def __init__(self, message: str, key: str | None = None) -> None:
        super().__init__(message)
        self.key = key


class InputError(SparklesError):
    """The user asked for something that cannot be done as given."""


class BackendError(SparklesError):
    """A backend URL names an unknown scheme or cannot be opened."""

    def __init__(self, message: str, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class StoreError(SparklesError):
    """The job and task store could not complete a request."""


class JobNotFound(StoreError):
    """No job matches the id or pattern."""

    def __init__(self, pattern: str) -> None:
        super().__init__(
            f"No job matches {pattern!r}; run 'sparkles status' to list the jobs."
        )
        self.pattern = pattern


class ClusterError(SparklesError):
    """Nodes of a cluster could not be started, inspected or stopped."""

    def __init__(self, message: str, cluster_id: str | None = None) -> None:
        super().__init__(message)
        self.cluster_id = cluster_id


class JobFailed(SparklesError):
    """A monitor gave up on a job, saying why."""

    def __init__(self, message: str, job_id: str) -> None:
        super().__init__(message)
        self.job_id = job_id


class TaskRunError(SparklesError):
    """A task could not be staged, started or have its outputs uploaded."""

    def __init__(self, message: str, task_id: str) -> None:
        super().__init__(message)
        self.task_id = task_id
