"""``sparkles sub``: turn a command line into a job, then watch it.

A submission runs in three steps. First everything the user gave is read
and checked on this machine (name, parameter table, placeholders, files to
upload), so bad input fails before anything is sent. Then the inputs go to
the CAS, and the job spec is built. Last, an existing job of the same name
is reused (``--skipifexists``, ``--retry``, ``--skip-if-complete``) or
replaced, and the new job is written in one store transaction.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sparkles_core.cli.context import CliContext, pass_context
from sparkles_core.errors import InputError

if TYPE_CHECKING:
    from sparkles_core.cli.params import ParamTable, TaskCommand
    from sparkles_core.models import GPU, Job, JobSpec, MachineSpec
    from sparkles_core.submit import LocalInput

# Engine modules (pydantic models, the CAS) are imported inside the functions
# that use them, so that ``sparkles --help`` does not pay for them.

__all__ = ["SubRequest", "run_sub", "sub"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SubRequest:
    """What the user asked ``sparkles sub`` for."""

    name: str
    command: tuple[str, ...]
    params: Path | None = None
    seq: int | None = None
    pushes: tuple[str, ...] = ()
    image: str | None = None
    machine_type: str | None = None
    nodes: int | None = None
    cd: str = "."
    results: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    gpu: str | None = None
    no_wait: bool = False
    skip_if_exists: bool = False
    retry: bool = False
    skip_if_complete: bool = False


@dataclass(frozen=True)
class _Plan:
    """A request checked on this machine, before anything is uploaded."""

    name: str
    commands: list[TaskCommand]
    pushes: list[LocalInput]
    working_dir: str
    machine: MachineSpec
    image: str | None
    nodes: int


_EPILOG = """\b
Examples:
  sparkles sub -n hello echo hello world
  sparkles sub -n sort -u words.txt -- 'sort words.txt > sorted.txt'
  sparkles sub -n sweep --params runs.csv python3 ^fit.py --alpha {alpha}
  sparkles sub -n shards --seq 100 --nodes 10 sh ^shard.sh {index}

\b
COMMAND is the rest of the line: one argument is run as a shell line,
several are quoted and run as one command. With --params or --seq, {name}
is replaced per task by that column's value ({{ and }} give literal
braces); a {name} that is no column is refused. CSV names and values are
stripped of surrounding spaces. A token written ^PATH uploads that file
and is replaced by its path in the task's folder. -u takes SRC, SRC:DST,
a folder (sent whole) or @LISTFILE (one SRC[:DST] per line).

\b
If a job of this name exists, it is killed and replaced (see the
when_sub_job_exists config key), unless --skipifexists, --retry or
--skip-if-complete says otherwise.

\b
Exit status: 0 if every task succeeded, 1 if any did not, 2 on bad
input; with --no-wait, 0 once the job is stored."""


@click.command(
    context_settings={"allow_interspersed_args": False},
    epilog=_EPILOG,
)
@click.option("-n", "--name", required=True, help="Job name (also its id).")
@click.option(
    "-p",
    "--params",
    type=click.Path(path_type=Path),
    default=None,
    metavar="FILE.csv",
    help="One task per row of this CSV file; the header names the columns.",
)
@click.option(
    "--seq",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="N tasks, with parameter {index} from 0 to N-1.",
)
@click.option(
    "-u",
    "--push",
    "pushes",
    multiple=True,
    metavar="SRC[:DST]",
    help="Upload a file or folder into each task's folder (repeatable).",
)
@click.option("-i", "--image", default=None, help="Container image for tasks.")
@click.option("-m", "--machine-type", default=None, help="Machine type of nodes.")
@click.option(
    "--nodes",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Most nodes to run at once (default: config key 'nodes').",
)
@click.option(
    "--cd",
    default=".",
    metavar="DIR",
    help="Folder, inside the task's folder, to run the command in.",
)
@click.option(
    "--results",
    multiple=True,
    metavar="GLOB",
    help="Keep only the output files matching GLOB (repeatable; default: all).",
)
@click.option(
    "--ignore",
    multiple=True,
    metavar="GLOB",
    help="Do not keep the output files matching GLOB (repeatable).",
)
@click.option(
    "--gpu",
    "--add-gpu",
    "gpu",
    default=None,
    metavar="TYPE[:COUNT]",
    help="GPUs on each node, such as nvidia-tesla-t4:2 (--add-gpu is the "
    "Sparklespray spelling).",
)
@click.option(
    "--no-wait",
    is_flag=True,
    help="Store the job and return; 'sparkles watch' starts its nodes.",
)
@click.option(
    "--skipifexists",
    is_flag=True,
    help="If a job of this name has the same spec, watch it instead.",
)
@click.option(
    "--retry",
    is_flag=True,
    help="If a job of this name has the same spec, rerun only its tasks "
    "that did not succeed.",
)
@click.option(
    "--skip-if-complete",
    is_flag=True,
    help="Do nothing if a job of this name exists and all its tasks succeeded.",
)
@click.argument("command", nargs=-1, required=True)
@pass_context
def sub(
    state: CliContext,
    name: str,
    params: Path | None,
    seq: int | None,
    pushes: tuple[str, ...],
    image: str | None,
    machine_type: str | None,
    nodes: int | None,
    cd: str,
    results: tuple[str, ...],
    ignore: tuple[str, ...],
    gpu: str | None,
    no_wait: bool,
    skipifexists: bool,
    retry: bool,
    skip_if_complete: bool,
    command: tuple[str, ...],
) -> None:
    """Submit COMMAND as a job of one or more tasks, then watch it."""
    if params is not None and seq is not None:
        raise click.UsageError("Give --params or --seq, not both.")
    request = SubRequest(
        name,
        command,
        params,
        seq,
        pushes,
        image,
        machine_type,
        nodes,
        cd,
        results,
        ignore,
        gpu,
        no_wait,
        skipifexists,
        retry,
        skip_if_complete,
    )
    # The command group discards exit codes given to ctx.exit, so the
    # status leaves the process directly.
    sys.exit(run_sub(state, request))


def run_sub(state: CliContext, request: SubRequest) -> int:
    """Submit (or reuse) the job ``request`` describes; return the exit status."""
    from sparkles_core.cli.watch import EXIT_FAILED, EXIT_OK, watch_job

    plan = _plan(state, request)
    existing = state.client.store.get_job(plan.name)
    if existing and request.skip_if_complete and _all_succeeded(state, existing):
        state.say(f"Job {existing.id} already exists and every task succeeded.")
        return EXIT_OK
    # Ask the cluster before anything is uploaded or an old job is replaced.
    state.client.check_job(_draft_spec(plan))
    spec = _build_spec(state, request, plan)
    job = _place(state, request, spec, existing)
    if job is None:
        return EXIT_FAILED
    if request.no_wait:
        state.say(f"Watch it with: sparkles watch {job.id}")
        return EXIT_OK
    return watch_job(state, job)


def _plan(state: CliContext, request: SubRequest) -> _Plan:
    """Check everything the request gives, reading only local files."""
    from sparkles_core.cli.params import plan_commands, read_pushes
    from sparkles_core.paths import check_relative_path
    from sparkles_core.submit import validate_job_name

    config = state.client.config
    name = validate_job_name(request.name)
    commands = plan_commands(request.command, _table(request))
    machine = config.machine_spec()
    if request.machine_type:
        machine = machine.model_copy(update={"machine_type": request.machine_type})
    if request.gpu:
        machine = machine.model_copy(update={"gpus": (_parse_gpu(request.gpu),)})
    return _Plan(
        name=name,
        commands=commands,
        pushes=read_pushes(request.pushes),
        working_dir=check_relative_path(request.cd, "working folder (--cd)"),
        machine=machine,
        image=request.image or config.default_image,
        nodes=request.nodes or config.nodes,
    )


def _table(request: SubRequest) -> ParamTable | None:
    """Return the parameter rows, or None for a single task."""
    from sparkles_core.cli.params import read_params_csv, sequence

    if request.params is not None:
        return read_params_csv(request.params)
    if request.seq is not None:
        return sequence(request.seq)
    return None


def _parse_gpu(text: str) -> GPU:
    """Parse ``TYPE[:COUNT]`` as given to ``--gpu``."""
    from sparkles_core.models import GPU

    kind, sep, count = text.partition(":")
    if not kind or (sep and not (count.isdigit() and int(count) >= 1)):
        raise InputError(
            f"GPU {text!r} is not valid; give TYPE or TYPE:COUNT with a count "
            "of 1 or more, such as nvidia-tesla-t4:2."
        )
    return GPU(type=kind, count=int(count) if sep else 1)


def _draft_spec(plan: _Plan) -> JobSpec:
    """Return the job spec without its tasks, to ask the cluster early."""
    from sparkles_core.models import JobSpec

    return JobSpec(
        name=plan.name,
        tasks=[],
        machine=plan.machine,
        image=plan.image,
        nodes=plan.nodes,
    )


def _all_succeeded(state: CliContext, job: Job) -> bool:
    """Return True when every task of ``job`` succeeded."""
    tasks = state.client.tasks(job.id)
    return bool(tasks) and all(task.succeeded for task in tasks)


def _build_spec(state: CliContext, request: SubRequest, plan: _Plan) -> JobSpec:
    """Upload the inputs and return the job spec."""
    from sparkles_core.cli.params import stage_tasks
    from sparkles_core.cli.tables import plural
    from sparkles_core.models import JobSpec, UploadRules
    from sparkles_core.run_args import check_command_exists

    client = state.client
    if client.config.cluster_url == "local" and plan.image is None:
        # The task runs on this machine: a misspelt program fails here, now.
        first = plan.commands[0]
        dsts = {item.dst for item in [*plan.pushes, *first.inputs]}
        check_command_exists(first.line, dsts, plan.working_dir)
    include = list(request.results) or ["**"]
    rules = UploadRules(include=include, exclude=list(request.ignore))
    tasks, report = stage_tasks(
        client, plan.commands, plan.pushes, plan.working_dir, rules
    )
    if report.files:
        sent = plural(report.uploaded_files, "file")
        state.say(
            f"{sent} ({plural(report.uploaded_bytes, 'byte')}) uploaded out of "
            f"{plural(report.files, 'file')} ({plural(report.bytes, 'byte')})"
        )
    return JobSpec(
        name=plan.name,
        tasks=tasks,
        machine=plan.machine,
        image=plan.image,
        nodes=plan.nodes,
    )


def _place(
    state: CliContext, request: SubRequest, spec: JobSpec, existing: Job | None
) -> Job | None:
    """Reuse, retry or replace an existing job, or store a new one."""
    from sparkles_core.cli.tables import plural

    if existing is not None and existing.spec_hash == spec.spec_hash():
        if request.skip_if_exists:
            logger.info("Job %s: same spec already stored; kept", existing.id)
            state.say(f"Job {existing.id} already exists with this spec; kept.")
            return existing
        if request.retry:
            _retry(state, existing)
            return existing
    if existing is not None:
        # A refusal must come before the old job is killed and deleted; the
        # early check saw no tasks, this one sees the whole spec.
        state.client.check_job(spec)
        if not _make_room(state, existing, spec):
            return None
    job = state.client.submit(spec, spec.name)
    tasks = plural(job.task_count, "task")
    state.say(f"Submitted job {job.id}: {tasks} on cluster {job.cluster}.")
    return job


def _retry(state: CliContext, job: Job) -> None:
    """Set the tasks of ``job`` that ended without success back to pending."""
    from sparkles_core.cli.tables import plural
    from sparkles_core.models import JobStatus, TaskStatus

    store = state.client.store
    ended = (TaskStatus.COMPLETE, TaskStatus.FAILED, TaskStatus.KILLED)
    redo = [task.id for task in store.list_tasks(job.id, ended) if not task.succeeded]
    # A killed job hands out no task, so it must be live again first.
    store.set_job_status(job.id, JobStatus.SUBMITTED)
    count = store.reset(redo, reason="retried by sub --retry", statuses=ended)
    logger.info("Job %s: %d tasks reset to run again", job.id, count)
    state.say(f"Job {job.id}: {plural(count, 'task')} to run again.")


def _make_room(state: CliContext, old: Job, spec: JobSpec) -> bool:
    """Kill and delete ``old`` as the config allows; False if the user declines."""
    from sparkles_core.submit import cluster_id_for

    client = state.client
    policy = client.config.when_sub_job_exists
    if policy == "abort":
        raise InputError(
            f"Job {old.id!r} already exists and when_sub_job_exists is 'abort'; "
            "choose another name, delete the job first, or, if the spec is "
            "unchanged, pass --skipifexists or --retry."
        )
    if policy == "confirm" and not state.confirm(
        f"Job {old.id} already exists. Kill it and replace it?"
    ):
        state.say(f"Job {old.id} kept; nothing submitted.")
        return False
    # Nodes of the same cluster can run the new job, so they stay up.
    same_cluster = old.cluster == cluster_id_for(spec.machine, spec.image)
    client.kill(old.id, keep_cluster=same_cluster)
    client.store.delete_job(old.id)
    logger.info("Job %s: killed and deleted to make way for a new spec", old.id)
    state.say(f"Killed and deleted the previous job {old.id}.")
    return True
