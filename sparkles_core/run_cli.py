"""``sparkles-run``: run one command as a Sparkles task, as if it were local.

The command's output streams to this terminal while it runs; the files it
writes come back into the current folder (or ``--dest``); the exit code is
the command's own.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

from sparkles_cas.errors import StorageError
from sparkles_core.errors import SparklesError, StoreError
from sparkles_core.models import (
    Job,
    JobSpec,
    NodeReq,
    Task,
    TaskSpec,
    TaskStatus,
    UploadRules,
)
from sparkles_core.run_args import (
    check_command_exists,
    command_line,
    expand_caret_tokens,
)
from sparkles_core.submit import new_job_id, parse_push, validate_job_name

if TYPE_CHECKING:
    from sparkles_core.client import Client

__all__ = ["main"]

logger = logging.getLogger(__name__)

# Sparkles could not run the task (staging, spawn or upload failed): the
# code ``docker run`` uses for its own failures.
EXIT_NOT_RUN = 125
EXIT_INTERRUPTED = 130


class RunReporter:
    """Stream the task's output to stdout and status lines to stderr."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self._console, self._quiet = console, quiet
        self._last = ""

    def progress(
        self, job: Job, counts: Mapping[TaskStatus, int], nodes: Sequence[NodeReq]
    ) -> None:
        """Say when the task starts waiting and when it starts running."""
        alive = sum(1 for node in nodes if node.status.alive)
        if counts.get(TaskStatus.CLAIMED):
            line = "running"
        elif counts.get(TaskStatus.PENDING):
            line = f"waiting for a worker ({alive} starting)" if alive else "queued"
        else:
            return
        if line != self._last:
            self._last = line
            self.message(f"{job.id}: {line}")

    def log(self, task_id: str, data: bytes) -> None:
        """Write the task's output as it arrives."""
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()

    def message(self, text: str) -> None:
        """Show a status line on stderr."""
        if not self._quiet:
            self._console.print(
                f"sparkles: {text}",
                style="dim",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )


@click.command(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Examples:
  sparkles-run -- echo hello
  sparkles-run -u data.csv -- 'sort data.csv > sorted.csv'
  sparkles-run -- python3 ^analyse.py --out result.txt

\b
A single COMMAND argument is run as a shell line; several are quoted and
run as one command. A token written ^PATH uploads that file and is
replaced by its path in the task's folder.

\b
Exit status: the command's own; 128+N if it was killed by signal N;
125 if Sparkles could not run it; 130 if interrupted with Ctrl-C.""",
)
@click.option(
    "-u",
    "--upload",
    "uploads",
    multiple=True,
    metavar="SRC[:DST]",
    help="Upload a file or folder into the task's folder (repeatable).",
)
@click.option("--nodes", default=1, show_default=True, help="Workers to start.")
@click.option("-i", "--image", default=None, help="Container image for the task.")
@click.option("-m", "--machine-type", default=None, help="Machine type of nodes.")
@click.option("-n", "--name", default=None, help="Job name (default: run-<time>).")
@click.option("--timeout", type=float, default=None, help="Kill after SECONDS.")
@click.option(
    "--dest",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Folder the task's output files are written to.",
)
@click.option("--results", multiple=True, help="Glob of files to bring back.")
@click.option("--ignore", multiple=True, help="Glob of files not to bring back.")
@click.option(
    "-c", "--config", "config_file", type=click.Path(path_type=Path), default=None
)
@click.option("-o", "--override", "overrides", multiple=True, metavar="KEY=VALUE")
@click.option("-q", "--quiet", is_flag=True, help="Print only the task's output.")
@click.option("--debug", is_flag=True, help="Log detail and show tracebacks.")
@click.argument("command", nargs=-1, required=True)
def main(
    uploads: tuple[str, ...],
    nodes: int,
    image: str | None,
    machine_type: str | None,
    name: str | None,
    timeout: float | None,
    dest: Path,
    results: tuple[str, ...],
    ignore: tuple[str, ...],
    config_file: Path | None,
    overrides: tuple[str, ...],
    quiet: bool,
    debug: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND as a Sparkles task and exit with its exit code."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING)
    console = Console(stderr=True)
    request = RunRequest(
        command,
        uploads,
        nodes,
        image,
        machine_type,
        name,
        timeout,
        dest,
        UploadRules(include=list(results) or ["**"], exclude=list(ignore)),
    )
    try:
        code = _run(request, config_file, overrides, RunReporter(console, quiet))
    except (SparklesError, StorageError) as exc:
        if debug:
            raise
        console.print(
            f"sparkles-run: error: {exc}",
            style="red",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        code = 2
    sys.exit(code)


@dataclass(frozen=True)
class RunRequest:
    """What the user asked ``sparkles-run`` for."""

    command: tuple[str, ...]
    uploads: tuple[str, ...]
    nodes: int
    image: str | None
    machine_type: str | None
    name: str | None
    timeout: float | None
    dest: Path
    rules: UploadRules


def _run(
    request: RunRequest,
    config_file: Path | None,
    overrides: tuple[str, ...],
    reporter: RunReporter,
) -> int:
    from sparkles_core.client import Client
    from sparkles_core.config import load_config, parse_override

    config = load_config(config_file, dict(parse_override(o) for o in overrides))
    client = Client(config)
    try:
        job = _submit(client, request, reporter)
        return _wait_and_fetch(client, job, request.dest, reporter)
    finally:
        client.close()


def _submit(client: Client, request: RunRequest, reporter: RunReporter) -> Job:
    """Upload the inputs and store a one-task job."""
    machine = client.config.machine_spec()
    if request.machine_type:
        machine = machine.model_copy(update={"machine_type": request.machine_type})
    image = request.image or client.config.default_image
    inputs = [parse_push(text) for text in request.uploads]
    argv, caret_inputs = expand_caret_tokens(request.command)
    inputs.extend(caret_inputs)
    line = command_line(argv)
    if client.config.cluster_url == "local" and request.image is None:
        check_command_exists(line, {item.dst for item in inputs})
    job_id = validate_job_name(request.name) if request.name else new_job_id()
    downloads, report = client.upload(inputs)
    if report.files:
        reporter.message(
            f"uploaded {report.uploaded_files} of {report.files} files "
            f"({report.uploaded_bytes} of {report.bytes} bytes)"
        )
    task = TaskSpec(
        command=line,
        downloads=downloads,
        uploads=request.rules,
        timeout=request.timeout,
    )
    spec = JobSpec(
        name=job_id, tasks=[task], machine=machine, image=image, nodes=request.nodes
    )
    return client.submit(spec, job_id)


def _wait_and_fetch(client: Client, job: Job, dest: Path, reporter: RunReporter) -> int:
    """Stream the task, bring its files back, and return the exit code."""
    task_id = f"{job.id}.1"
    try:
        client.wait(job, reporter, follow=task_id)
    except KeyboardInterrupt:
        client.kill(job.id)
        reporter.message(f"interrupted: task {task_id} killed")
        return EXIT_INTERRUPTED
    finally:
        client.stop_cluster_if_idle(job.cluster)
    task = client.store.get_task(task_id)
    if task is None:
        raise StoreError(f"Task {task_id!r} vanished from the store while running.")
    fetched = client.fetch(task, dest)
    if fetched:
        reporter.message(f"fetched {len(fetched)} files into {dest}")
    return _exit_code(task, reporter)


def _exit_code(task: Task, reporter: RunReporter) -> int:
    if task.status is TaskStatus.COMPLETE:
        if task.signal is not None:
            reporter.message(f"task {task.id} killed by signal {task.signal}")
            return 128 + task.signal
        return task.exit_code if task.exit_code is not None else EXIT_NOT_RUN
    reporter.message(
        f"task {task.id} {task.status}: {task.failure_reason or 'no reason given'}"
    )
    return EXIT_INTERRUPTED if task.status is TaskStatus.KILLED else EXIT_NOT_RUN
