"""``sparkles-run``: run one command as a Sparkles task, as if it were local.

The command's output streams to this terminal while it runs; the files it
writes come back into the current folder (or ``--dest``); the exit code is
the command's own.

Once the job is stored, nothing may leave it claimable: an error, Ctrl-C,
SIGTERM or SIGHUP (the terminal closed) kills the job and stops its workers
before ``sparkles-run`` exits (:mod:`sparkles_core.run_signals` turns the
signals into one exception). What it shows is in :mod:`sparkles_core.run_output`.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable
from typing import TYPE_CHECKING

from pydantic import ValidationError
from rich.console import Console

from sparkles_cas.errors import StorageError
from sparkles_core.cli.tables import plural
from sparkles_core.errors import InputError, JobFailed, SparklesError, StoreError
from sparkles_core.models import (
    Download,
    Job,
    JobSpec,
    JobStatus,
    Task,
    TaskSpec,
    TaskStatus,
    UploadRules,
)
from sparkles_core.run_args import (
    EXIT_BAD_INPUT,
    RunRequest,
    check_command_exists,
    command_line,
    expand_caret_tokens,
    run_command,
)
from sparkles_core.run_output import ConsoleLogHandler, RunReporter
from sparkles_core.run_signals import Interrupted, SignalGuard
from sparkles_core.submit import LocalInput, new_job_id, parse_push, validate_job_name

if TYPE_CHECKING:
    from sparkles_core.client import Client

__all__ = ["RunSession", "main", "run"]

logger = logging.getLogger(__name__)

# Sparkles could not run the task (staging, spawn or upload failed): the
# code ``docker run`` uses for its own failures.
EXIT_NOT_RUN = 125


class RunSession:
    """One ``sparkles-run``: store the job, follow it, never leave it behind."""

    def __init__(
        self, request: RunRequest, reporter: RunReporter, guard: SignalGuard
    ) -> None:
        self._request, self._reporter, self._guard = request, reporter, guard
        self._client: Client | None = None
        self._job: Job | None = None
        self._task_done = False
        self._killed: str | None = None

    def run(self) -> int:
        """Run the request; return the exit code, whatever happens."""
        try:
            self._guard.install()
            return self._run()
        except BaseException as exc:
            with self._guard.held("stopping the workers first", reraise=False):
                self._abandon(exc)
                return self._failed(exc)
        finally:
            self._guard.ignore()
            if self._client is not None:
                _attempt("close the store and storage", self._client.close)

    def _run(self) -> int:
        from sparkles_core.client import Client
        from sparkles_core.config import load_config, parse_override

        request = self._request
        overrides = dict(parse_override(text) for text in request.overrides)
        config = load_config(request.config_file, overrides)
        self._client = client = Client(config)
        job_id, spec = self._prepare(client)
        with self._guard.held():
            self._job = job = client.submit(spec, job_id)
        task = self._wait(client, job)
        self._task_done = True
        client.record_outcome(job.id, task.succeeded)
        with self._guard.held("stopping the workers"):
            client.stop_cluster_if_idle(job.cluster)
        fetched = client.fetch(task, request.dest)
        if fetched:
            files = plural(len(fetched), "file")
            self._reporter.message(f"fetched {files} into {request.dest}")
        return _exit_code(task, self._reporter)

    def _prepare(self, client: Client) -> tuple[str, JobSpec]:
        """Check the command, upload the inputs; return the job id and spec."""
        request = self._request
        inputs = [parse_push(text) for text in request.uploads]
        argv, caret_inputs = expand_caret_tokens(request.command)
        inputs.extend(caret_inputs)
        line = command_line(argv)
        if not line.strip():
            raise InputError("The command is empty; give it after --.")
        image = request.image or client.config.default_image
        if client.config.cluster_url == "local" and image is None:
            # The task runs on this machine, not in an image: check it here.
            check_command_exists(line, {item.dst for item in inputs})
        job_id = validate_job_name(request.name) if request.name else new_job_id()
        downloads = self._upload(client, inputs)
        try:
            return job_id, _job_spec(client, request, line, downloads, job_id)
        except ValidationError as exc:
            raise _input_error(exc) from exc

    def _upload(self, client: Client, inputs: list[LocalInput]) -> list[Download]:
        try:
            downloads, report = client.upload(inputs)
        except OSError as exc:
            what = repr(exc.filename) if exc.filename else "a file"
            raise InputError(
                f"Cannot read {what} to upload it: {exc.strerror or exc}; check "
                "that the files given with -u or ^PATH are readable."
            ) from exc
        if report.files:
            self._reporter.message(
                f"uploaded {report.uploaded_files} of {plural(report.files, 'file')} "
                f"({report.uploaded_bytes} of {plural(report.bytes, 'byte')})"
            )
        return downloads

    def _wait(self, client: Client, job: Job) -> Task:
        """Follow the task until it ends; return its record."""
        task_id = f"{job.id}.1"
        client.wait(job, self._reporter, follow=task_id)
        task = client.store.get_task(task_id)
        if task is None:
            raise StoreError(f"Task {task_id!r} vanished from the store while running.")
        return task

    def _abandon(self, exc: BaseException) -> None:
        """Kill the job if its task may still run, and stop its workers."""
        client, job = self._client, self._job
        if client is None or job is None:
            return
        store = client.store
        if not self._task_done and _attempt(
            f"kill job {job.id}", lambda: client.kill(job.id, keep_cluster=True)
        ):
            self._killed = f"{job.id}.1"
        if isinstance(exc, JobFailed):
            _attempt(
                f"mark job {job.id} failed",
                lambda: store.set_job_status(job.id, JobStatus.FAILED),
            )
        _attempt(
            f"stop the workers of job {job.id}",
            lambda: client.stop_cluster_if_idle(job.cluster),
        )

    def _failed(self, exc: BaseException) -> int:
        """Say in one line why the run stopped; return the exit code."""
        logger.debug("Run: stopped by %r", exc, exc_info=exc)
        if isinstance(exc, KeyboardInterrupt):
            exc = Interrupted(signal.SIGINT)
        if isinstance(exc, Interrupted):
            by = "" if exc.signum == signal.SIGINT else f" by {exc}"
            self._reporter.outcome(f"interrupted{by}: {self._aftermath()}")
            return 128 + exc.signum
        expected = isinstance(exc, SparklesError | StorageError)
        text = _sentence(str(exc) if expected else _unexpected(exc))
        if self._killed:
            text += f" Task {self._killed} was killed."
        if not expected and not self._request.debug:
            text += " Run with --debug for the traceback."
        self._reporter.error(text)
        if expected and self._job is None:
            return EXIT_BAD_INPUT
        return EXIT_NOT_RUN

    def _aftermath(self) -> str:
        """Return what became of the job, for the interrupted line."""
        job = self._job
        if job is None:
            return "nothing was submitted"
        if self._killed:
            return f"task {self._killed} killed"
        if self._task_done:
            return f"the task had ended; fetch its files: sparkles fetch {job.id}"
        return f"job {job.id} may still run; stop it: sparkles kill {job.id}"


def _exit_code(task: Task, reporter: RunReporter) -> int:
    """Return the task's exit code, saying how it ended if not by itself."""
    if task.status is TaskStatus.COMPLETE:
        if task.signal is None:
            return task.exit_code if task.exit_code is not None else EXIT_NOT_RUN
        if task.timed_out and task.spec.timeout is not None:
            reporter.outcome(f"task {task.id} timed out after {task.spec.timeout:g} s")
        else:
            reporter.outcome(f"task {task.id} killed by signal {task.signal}")
        return 128 + task.signal
    reason = task.failure_reason or "no reason given"
    reporter.outcome(f"task {task.id} {task.status}: {reason}")
    if task.status is TaskStatus.KILLED:
        return 128 + signal.SIGINT
    return EXIT_NOT_RUN


def _job_spec(
    client: Client,
    request: RunRequest,
    line: str,
    downloads: list[Download],
    job_id: str,
) -> JobSpec:
    """Return the one-task job the request describes."""
    machine = client.config.machine_spec()
    if request.machine_type:
        machine = machine.model_copy(update={"machine_type": request.machine_type})
    rules = UploadRules(
        include=list(request.results) or ["**"], exclude=list(request.ignore)
    )
    task = TaskSpec(
        command=line, downloads=downloads, uploads=rules, timeout=request.timeout
    )
    return JobSpec(
        name=job_id,
        tasks=[task],
        machine=machine,
        image=request.image or client.config.default_image,
        nodes=request.nodes,
    )


def _input_error(exc: ValidationError) -> InputError:
    """Return the first complaint of a pydantic error as one line."""
    first = exc.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "the job"
    return InputError(
        f"Invalid {where}: {first['msg']} (got {first.get('input')!r}); "
        "see sparkles-run --help."
    )


def _attempt(what: str, action: Callable[[], object]) -> bool:
    """Run a clean-up step; log, rather than raise, if it fails."""
    try:
        action()
    # Broad on purpose: a failing step must not hide why the clean-up began,
    # nor skip the steps after it.
    except Exception as exc:
        logger.error("Could not %s: %s", what, exc, exc_info=True)
        return False
    return True


def _unexpected(exc: BaseException) -> str:
    """Describe an error Sparkles did not raise on purpose."""
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror + (f": {exc.filename!r}" if exc.filename else "")
    return f"{type(exc).__name__}: {exc}"


def _sentence(text: str) -> str:
    """Return ``text`` ending with a full stop, so more can follow it."""
    return text if text.endswith((".", "!", "?")) else f"{text}."


def run(request: RunRequest) -> int:
    """Run the request with output on this terminal; return the exit code."""
    console = Console(stderr=True)
    handler = ConsoleLogHandler(console, request.debug, request.quiet)
    logging.basicConfig(level=handler.level, handlers=[handler], force=True)
    reporter = RunReporter(console, request.quiet)
    return RunSession(request, reporter, SignalGuard()).run()


main = run_command(run)
