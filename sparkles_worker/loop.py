"""The worker loop: claim a task, stage it, run it, report it, repeat.

On disk, under the worker's ``--work-dir`` (one worker's alone)::

    task/work/      the command's folder: inputs, then outputs; emptied
                    after each attempt
    task/log.txt    merged stdout and stderr of the current attempt,
                    streamed to storage

The folders are kept between tasks because creating and removing them costs
more than a trivial command does.

The lease is renewed (by :class:`~sparkles_worker.heartbeat.Heartbeat`) for
the whole attempt, from the claim through staging, the command and the
upload of its outputs, until the task is completed, failed or handed back.

A SIGTERM (a spot VM's preemption notice, or the local cluster shutting
down) stops the command, hands the task back as pending with reason
``preempted``, and ends the loop.

When staging or the upload of outputs fails for a reason that may pass (a
storage request or the local disk failing), the step is tried again in
place for about half a minute, the lease renewed meanwhile; if it still
fails, the task is handed back to be tried again, on this node or another,
within its attempt budget, and the store fails it once the budget is spent.
A failure that another try cannot mend (an input missing from storage or
not matching its digest, an unsafe path, a malformed spec) fails the task at
once.

With a container runtime, a task whose job names an image runs in that
image (see :mod:`sparkles_worker.container`); any other task runs in the
worker's own environment.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sparkles_cas.cas import CAS
from sparkles_cas.errors import (
    DigestMismatch,
    InvalidDigest,
    InvalidKey,
    ObjectNotFound,
    StorageError,
    UnsupportedURL,
)
from sparkles_cas.nodecache import NodeCache
from sparkles_cas.storage import ObjectStorage
from sparkles_core import layout
from sparkles_core.errors import SparklesError, StoreError, TaskRunError
from sparkles_core.models import Task, TaskResult
from sparkles_core.plugins import plugin_manager
from sparkles_core.store.base import Completion, Store
from sparkles_worker import container, execute
from sparkles_worker.heartbeat import LEASE_LOST, Heartbeat, Held
from sparkles_worker.outputs import collect_outputs, upload_outputs
from sparkles_worker.staging import Staged, read_secret_env, stage

__all__ = ["PREEMPTED", "Worker", "WorkerOptions"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

PREEMPTED = "preempted"
# Idle polling starts fast (tasks often arrive in bursts) and backs off.
MIN_POLL_S = 0.02

# Pauses between tries of a storage step that failed for a passing reason:
# 31.5 s in all, enough for a bucket's or a network's bad moment, and well
# inside the lease the heartbeat keeps renewing meanwhile.
_RETRY_DELAYS_S = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)

# Storage errors that trying again cannot mend: the object is missing or is
# not what its digest says, or the request itself is malformed.
_LASTING = (ObjectNotFound, DigestMismatch, InvalidDigest, InvalidKey, UnsupportedURL)


@dataclass(frozen=True)
class WorkerOptions:
    """How one worker behaves."""

    cluster: str
    node_id: str
    work_dir: Path
    cache_dir: Path
    lease_s: float = 60.0
    linger_s: float = 10.0
    max_poll_s: float = 1.0
    log_interval_s: float = 5.0
    max_tasks: int | None = None
    container_runtime: str | None = None
    gpus: bool = False
    retry_delays_s: tuple[float, ...] = _RETRY_DELAYS_S


class Worker:
    """Consume the tasks of one cluster until idle, stopped or done."""

    def __init__(
        self,
        store: Store,
        storage: ObjectStorage,
        options: WorkerOptions,
        cas: CAS | None = None,
    ) -> None:
        """Work from ``store``; ``cas`` defaults to the CAS under ``storage``."""
        self._store, self._storage, self._options = store, storage, options
        self._cas = cas or CAS(storage)
        self._cache = NodeCache(options.cache_dir, self._cas)
        self._stop_reason: str | None = None
        self._wake = threading.Event()
        self._running: execute.Running | None = None
        self._heartbeat = Heartbeat(
            store, storage, options.node_id, options.lease_s, options.log_interval_s
        )
        self._images: dict[str, str | None] = {}
        self.tasks_done = 0

    def request_stop(self, reason: str) -> None:
        """Stop after the current step; a running command is stopped now."""
        self._stop_reason = reason
        self._wake.set()
        if self._running is not None:
            self._running.stop(reason)

    def run(self) -> str:
        """Run the loop; return why it ended."""
        owner = self._options.node_id
        logger.info("Worker %s: consuming cluster %s", owner, self._options.cluster)
        self._heartbeat.start()
        try:
            reason = self._loop()
        finally:
            self._heartbeat.close()
        logger.info(
            "Worker %s: exiting after %d tasks: %s", owner, self.tasks_done, reason
        )
        return reason

    def _loop(self) -> str:
        idle_since, poll = time.monotonic(), MIN_POLL_S
        while self._stop_reason is None:
            limit = self._options.max_tasks
            if limit is not None and self.tasks_done >= limit:
                return f"ran {self.tasks_done} tasks"
            task = self._store.claim(
                self._options.cluster, self._options.node_id, self._options.lease_s
            )
            if task is None:
                if time.monotonic() - idle_since >= self._options.linger_s:
                    return f"idle for {self._options.linger_s:g} s"
                self._wake.wait(poll)
                poll = min(poll * 2, self._options.max_poll_s)
                continue
            self._process(task)
            self.tasks_done += 1
            idle_since, poll = time.monotonic(), MIN_POLL_S
        return self._stop_reason

    def _process(self, task: Task) -> None:
        folder = self._options.work_dir / "task"
        logger.info("Task %s: claimed (attempt %d)", task.id, task.attempt)
        held = self._heartbeat.hold(task.id)
        try:
            self._attempt(task, held, folder)
        except SparklesError as exc:
            self._give_up_or_retry(task, str(exc), exc)
        except (StorageError, OSError) as exc:
            self._give_up_or_retry(task, f"{type(exc).__name__}: {exc}", exc)
        finally:
            self._heartbeat.release()
            _empty(folder / "work")

    def _attempt(self, task: Task, held: Held, folder: Path) -> None:
        root, log_path = folder / "work", folder / "log.txt"
        log_key = layout.log_key(task.id, task.attempt)
        spec, cache, storage = task.spec, self._cache, self._storage
        try:
            staged = self._patiently(
                task, held, "staging", lambda: stage(spec, root, cache, storage)
            )
            secret_env = self._patiently(
                task,
                held,
                "reading its variables",
                lambda: read_secret_env(spec, storage, task.id),
            )
        except (StorageError, SparklesError, OSError) as exc:
            self._give_up_or_retry(task, f"staging failed: {exc}", exc)
            return
        if held.lost:
            logger.warning("Task %s: abandoned after staging, %s", task.id, LEASE_LOST)
            return
        plugin_manager().hook.sparkles_before_command(task=task, folder=root)
        self._store.set_log_key(task.id, self._options.node_id, log_key)
        outcome = self._execute(task, root, log_path, log_key, secret_env)
        if outcome.stop_reason == self._stop_reason and self._stop_reason:
            self._release(task)
        elif held.lost:
            logger.warning("Task %s: abandoned, %s", task.id, LEASE_LOST)
        else:
            self._patiently(
                task,
                held,
                "uploading its outputs",
                lambda: self._report(task, root, outcome, staged),
            )

    def _execute(
        self,
        task: Task,
        root: Path,
        log_path: Path,
        log_key: str,
        secret_env: dict[str, str],
    ) -> execute.Outcome:
        running = self._start(task, root, log_path, secret_env)
        self._running = running
        if self._stop_reason is not None:  # a SIGTERM raced the start
            running.stop(self._stop_reason)
        self._heartbeat.watch(running, log_path, log_key)
        try:
            return running.wait()
        finally:
            self._running = None
            self._heartbeat.unwatch()

    def _start(
        self, task: Task, root: Path, log_path: Path, secret_env: dict[str, str]
    ) -> execute.Running:
        env = {
            **task.spec.env,
            **secret_env,
            "SPARKLES_TASK_ID": task.id,
            "SPARKLES_JOB_ID": task.job_id,
            "SPARKLES_ATTEMPT": str(task.attempt),
        }
        cwd = root / task.spec.working_dir
        image = self._image_of(task)
        if image is None:
            command = task.spec.shell_command
            env = {**os.environ, **env}
            return execute.start(command, cwd, log_path, env, task.spec.timeout)
        run = container.ContainerRun(
            image=image,
            command=task.spec.shell_command,
            folder=root,
            cwd=cwd,
            env=env,
            name=container.container_name(task.id, task.attempt),
            gpus=self._options.gpus,
            runtime=self._options.container_runtime or "docker",
        )
        return container.start(run, task.id, log_path, task.spec.timeout)

    def _image_of(self, task: Task) -> str | None:
        """Return the image the task runs in, or None for this environment."""
        if self._options.container_runtime is None:
            return None
        if task.job_id not in self._images:
            job = self._store.get_job(task.job_id)
            if job is None:
                raise TaskRunError(
                    f"Task {task.id}: its job {task.job_id!r} is gone, so its "
                    "image is unknown; resubmit the job.",
                    task.id,
                )
            self._images[task.job_id] = job.image
        return self._images[task.job_id]

    def _report(
        self,
        task: Task,
        root: Path,
        outcome: execute.Outcome,
        staged: dict[str, Staged],
    ) -> None:
        paths = collect_outputs(root, task.spec.uploads, staged)
        outputs = upload_outputs(self._cas, root, paths)
        result = TaskResult(
            task_id=task.id,
            attempt=task.attempt,
            command=task.spec.shell_command,
            parameters=task.spec.parameters,
            exit_code=outcome.exit_code,
            signal=outcome.signal,
            timed_out=outcome.timed_out,
            started=outcome.started,
            finished=outcome.finished,
            usage=outcome.usage,
            outputs=outputs,
        )
        plugin_manager().hook.sparkles_after_command(
            task=task, folder=root, result=result
        )
        key = layout.result_key(task.id, task.attempt)
        self._storage.put_bytes(key, result.model_dump_json(indent=1).encode())
        completion = Completion(
            outcome.exit_code,
            outcome.signal,
            outcome.started,
            outcome.finished,
            outcome.usage,
            key,
            outcome.timed_out,
        )
        self._heartbeat.release()
        if self._store.complete(task.id, self._options.node_id, completion):
            logger.info("Task %s: complete, exit %s", task.id, _describe(outcome))
        else:
            logger.warning("Task %s: result refused, the lease was lost", task.id)

    def _release(self, task: Task) -> None:
        self._heartbeat.release()
        if self._store.release(task.id, self._options.node_id, PREEMPTED):
            logger.info("Task %s: handed back (%s)", task.id, PREEMPTED)

    def _patiently(
        self, task: Task, held: Held, what: str, step: Callable[[], _T]
    ) -> _T:
        """Return ``step()``, trying again while it fails for a passing reason.

        The last error is raised, as is at once one that will not pass, or
        any error once the lease is lost or the worker is asked to stop.
        """
        for delay in (*self._options.retry_delays_s, None):
            try:
                return step()
            except (StorageError, OSError) as exc:
                if delay is None or _is_lasting(exc) or held.lost:
                    raise
                if self._stop_reason is not None:
                    raise
                logger.warning(
                    "Task %s: %s failed (%s); trying again in %g s",
                    task.id,
                    what,
                    exc,
                    delay,
                )
                self._wake.wait(delay)
        raise AssertionError("unreachable: the last try returns or raises")

    def _give_up_or_retry(self, task: Task, reason: str, exc: Exception) -> None:
        """Fail the task if ``exc`` will happen again, else hand it back."""
        if _is_lasting(exc):
            self._fail(task, reason)
        else:
            self._retry(task, reason)

    def _retry(self, task: Task, reason: str) -> None:
        owner = self._options.node_id
        logger.warning(
            "Task %s: %s; handing it back to be tried again", task.id, reason
        )
        self._heartbeat.release()
        if not self._store.release(task.id, owner, f"{reason} (on {owner})"):
            logger.warning("Task %s: hand-back not recorded, lease lost", task.id)

    def _fail(self, task: Task, reason: str) -> None:
        logger.error("Task %s: failed: %s", task.id, reason)
        self._heartbeat.release()
        if not self._store.fail(task.id, self._options.node_id, reason):
            logger.warning("Task %s: failure not recorded, lease lost", task.id)


def _is_lasting(exc: Exception) -> bool:
    """Return True if trying the task again would meet ``exc`` again.

    Storage and disk trouble may pass, and so may the store's; anything else
    Sparkles raised on purpose (an unsafe path, a malformed spec) will not.
    """
    if isinstance(exc, _LASTING):
        return True
    if isinstance(exc, StorageError | OSError | StoreError):
        return False
    return isinstance(exc, SparklesError)


def _empty(folder: Path) -> None:
    """Remove everything inside ``folder``, keeping the folder itself."""
    try:
        entries = list(os.scandir(folder))
    except FileNotFoundError:
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(entry.path)


def _describe(outcome: execute.Outcome) -> str:
    ending = str(outcome.exit_code)
    if outcome.signal is not None:
        ending = f"signal {outcome.signal}"
    return f"{ending}, {outcome.stop_reason}" if outcome.timed_out else ending
