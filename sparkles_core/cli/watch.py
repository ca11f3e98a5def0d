"""``sparkles watch``: run the monitor over jobs until they end.

Watching is what keeps the nodes of a job's cluster coming: it sizes the
cluster, hands back orphaned tasks and shows progress. Interrupting it
leaves the jobs and their nodes as they are; watching again picks up from
there. ``sparkles sub`` watches the job it submitted in the same way. The
checks that do the watching are arranged in :mod:`sparkles_core.monitor.jobs`.
"""

from __future__ import annotations

import logging
import shlex
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

import click

from sparkles_core.cli.context import CliContext, pass_context
from sparkles_core.errors import JobFailed

if TYPE_CHECKING:
    from sparkles_core.cli.progress import WatchReporter
    from sparkles_core.models import Job

__all__ = [
    "EXIT_FAILED",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "watch",
    "watch_job",
    "watch_jobs",
]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


@click.command(
    epilog="""\b
Examples:
  sparkles watch LAST
  sparkles watch sweep --nodes 10 --no-loglive
  sparkles watch 'sm-*'

\b
Exit status: 0 if every task of every job succeeded, 1 if any did not,
130 if interrupted with Ctrl-C (the jobs keep running; watch them again
to resume).""",
)
@click.argument("pattern", metavar="PATTERN")
@click.option(
    "--nodes",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Keep up to N nodes per cluster for this watch instead of the "
    "jobs' own count.",
)
@click.option(
    "--loglive/--no-loglive",
    default=True,
    show_default=True,
    help="Show the output of one running task as it is written (when "
    "watching a single job).",
)
@click.option(
    "--verify",
    is_flag=True,
    help="First put complete tasks whose result.json is missing from "
    "storage back to pending, so they run again.",
)
@pass_context
def watch(
    state: CliContext, pattern: str, nodes: int | None, loglive: bool, verify: bool
) -> None:
    """Watch jobs until they end; start nodes for them as needed.

    PATTERN is a job id, LAST or a shell wildcard; every job it names is
    watched together, with a progress line for each. When the jobs end,
    their clusters are stopped once no job has work for them, except the
    cluster of a job that was killed (sparkles kill --keepcluster decides
    that) or that a Snakemake run owns.
    """
    jobs = state.jobs(pattern)
    if verify:
        for job in jobs:
            _verify(state, job)
    code = watch_jobs(state, jobs, nodes, loglive, again=shlex.quote(pattern))
    # The command group discards exit codes given to ctx.exit, so the
    # status leaves the process directly.
    sys.exit(code)


def watch_job(
    state: CliContext, job: Job, nodes: int | None = None, loglive: bool = True
) -> int:
    """Monitor ``job`` to its end and return the exit status to use."""
    return watch_jobs(state, [job], nodes, loglive, again=job.id)


def watch_jobs(
    state: CliContext,
    jobs: Sequence[Job],
    nodes: int | None = None,
    loglive: bool = True,
    again: str = "LAST",
) -> int:
    """Monitor ``jobs`` to their end and return the exit status to use.

    ``again`` is the argument that resumes the watch after Ctrl-C.
    """
    from sparkles_core.cli.progress import make_reporter

    client = state.client
    # Local nodes are this machine's processes: a billing class means nothing.
    classes = client.config.cluster_url != "local"
    reporter = make_reporter(state.console, client.store, jobs, classes)
    logger.info("Watching %d jobs", len(jobs))
    try:
        with reporter:
            _monitor(state, jobs, reporter, nodes, loglive)
    except KeyboardInterrupt:
        which = f"job {jobs[0].id} keeps" if len(jobs) == 1 else "the jobs keep"
        state.warn(
            f"Stopped watching; {which} running. Resume with: sparkles watch {again}"
        )
        return EXIT_INTERRUPTED
    return _conclude(state, jobs, reporter)


def _monitor(
    state: CliContext,
    jobs: Sequence[Job],
    reporter: WatchReporter,
    nodes: int | None,
    loglive: bool,
) -> None:
    """Run the monitor until no task of ``jobs`` is unfinished."""
    from sparkles_core.monitor.jobs import wait_for_jobs

    wait_for_jobs(
        state.client,
        jobs,
        reporter,
        lambda exc: _give_up(state, exc),
        nodes,
        stream_logs=loglive,
    )


def _verify(state: CliContext, job: Job) -> None:
    """Reset the job's complete tasks whose ``result.json`` is not stored."""
    from sparkles_core import layout
    from sparkles_core.cli.tables import plural
    from sparkles_core.models import JobStatus, TaskStatus

    client = state.client
    # The tasks first, then one listing of the job's objects (rather than a
    # request per task): a worker stores result.json before it marks its
    # task complete, so every task read as complete here has its result in
    # the listing that follows, even one that completed a moment before.
    complete = client.tasks(job.id, [TaskStatus.COMPLETE])
    stored = {info.key for info in client.storage.list(layout.job_prefix(job.id))}
    lost = [task.id for task in complete if task.result_key not in stored]
    reason = "its result.json is missing (sparkles watch --verify)"
    count = client.store.reset(lost, reason, [TaskStatus.COMPLETE]) if lost else 0
    if not count:
        state.say(f"Job {job.id}: every complete task has its result.json.")
        return
    # Let the watch record the job's new outcome when the tasks rerun.
    client.store.set_job_status(job.id, JobStatus.SUBMITTED)
    logger.info("Job %s: %d tasks had no result.json; reset", job.id, count)
    missing = plural(count, "complete task")
    state.say(f"Job {job.id}: {missing} without a result.json, back to pending.")


def _give_up(state: CliContext, exc: JobFailed) -> None:
    """Kill a job the monitor gave up on and mark it failed."""
    from sparkles_core.models import JobStatus

    state.warn(f"{exc} The job was killed.")
    state.client.kill(exc.job_id, keep_cluster=True)
    state.client.store.set_job_status(exc.job_id, JobStatus.FAILED)


def _conclude(state: CliContext, jobs: Sequence[Job], reporter: WatchReporter) -> int:
    """Show each job's outcome, record it, stop idle clusters; return the status."""
    client = state.client
    succeeded = total = 0
    all_ok, keep = True, set()
    for job in jobs:
        tasks = client.tasks(job.id)
        reporter.conclude(job, tasks)
        ok = bool(tasks) and all(task.succeeded for task in tasks)
        succeeded += sum(1 for task in tasks if task.succeeded)
        total, all_ok = total + len(tasks), all_ok and ok
        current = _record_outcome(state, job, ok)
        if current is not None and _keeps_cluster(current):
            keep.add(job.cluster)
    if len(jobs) > 1:
        reporter.conclude_all(succeeded, total)
    for cluster in sorted({job.cluster for job in jobs} - keep):
        client.stop_cluster_if_idle(cluster)
    return EXIT_OK if all_ok else EXIT_FAILED


def _keeps_cluster(job: Job) -> bool:
    """Return True if watching must leave the job's cluster running.

    A killed job's cluster is what ``sparkles kill`` chose to keep or stop;
    a Snakemake run starts and stops its own clusters.
    """
    from sparkles_core.models import SNAKEMAKE_RUN_LABEL, JobStatus

    return job.status is JobStatus.KILLED or SNAKEMAKE_RUN_LABEL in job.labels


def _record_outcome(state: CliContext, job: Job, succeeded: bool) -> Job | None:
    """Mark a finished job complete or failed, unless it was killed or deleted.

    Return the job's record as it was before, or None if it was deleted.
    """
    current = state.client.record_outcome(job.id, succeeded)
    if current is None:
        state.warn(f"Job {job.id} was deleted while it was being watched.")
    return current
