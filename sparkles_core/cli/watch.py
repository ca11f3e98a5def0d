"""``sparkles watch``: run the monitor over a job until it ends.

Watching is what keeps the nodes of a job's cluster coming: it sizes the
cluster, hands back orphaned tasks and shows progress. Interrupting it
leaves the job and its nodes as they are; watching again picks up from
there. ``sparkles sub`` watches the job it submitted in the same way.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING

import click

from sparkles_core.cli.context import CliContext, pass_context
from sparkles_core.errors import JobFailed

if TYPE_CHECKING:
    from sparkles_core.models import Job

__all__ = ["EXIT_FAILED", "EXIT_INTERRUPTED", "EXIT_OK", "watch", "watch_job"]

logger = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_INTERRUPTED = 130


@click.command(
    epilog="""\b
Examples:
  sparkles watch LAST
  sparkles watch sweep --nodes 10 --no-loglive

\b
Exit status: 0 if every task succeeded, 1 if any did not, 130 if
interrupted with Ctrl-C (the job keeps running; watch it again to resume).""",
)
@click.argument("job_id", metavar="JOB")
@click.option(
    "--nodes",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="Keep up to N nodes for this watch instead of the job's own count.",
)
@click.option(
    "--loglive/--no-loglive",
    default=True,
    show_default=True,
    help="Show the output of one running task as it is written.",
)
@pass_context
def watch(state: CliContext, job_id: str, nodes: int | None, loglive: bool) -> None:
    """Watch JOB (or LAST) until it ends; start nodes for it as needed."""
    code = watch_job(state, state.job(job_id), nodes, loglive)
    # The command group discards exit codes given to ctx.exit, so the
    # status leaves the process directly.
    sys.exit(code)


def watch_job(
    state: CliContext, job: Job, nodes: int | None = None, loglive: bool = True
) -> int:
    """Monitor ``job`` to its end and return the exit status to use."""
    from sparkles_core.cli.progress import make_reporter
    from sparkles_core.models import JobStatus

    client = state.client
    target = job if nodes is None else job.model_copy(update={"nodes": nodes})
    reporter = make_reporter(state.console, client.store, job)
    logger.info("Job %s: watching with up to %d nodes", job.id, target.nodes)
    try:
        with reporter:
            client.wait(target, reporter, stream_logs=loglive)
    except KeyboardInterrupt:
        state.warn(
            f"Stopped watching; job {job.id} keeps running. "
            f"Resume with: sparkles watch {job.id}"
        )
        return EXIT_INTERRUPTED
    except JobFailed as exc:
        state.warn(f"{exc} The job was killed.")
        client.kill(job.id, keep_cluster=True)
        client.store.set_job_status(job.id, JobStatus.FAILED)
    tasks = client.tasks(job.id)
    reporter.conclude(tasks)
    succeeded = bool(tasks) and all(task.succeeded for task in tasks)
    _record_outcome(state, job, succeeded)
    client.stop_cluster_if_idle(job.cluster)
    return EXIT_OK if succeeded else EXIT_FAILED


def _record_outcome(state: CliContext, job: Job, succeeded: bool) -> None:
    """Mark a finished job complete or failed, unless it was killed or deleted."""
    from sparkles_core.models import JobStatus

    store = state.client.store
    current = store.get_job(job.id)
    if current is None:
        state.warn(f"Job {job.id} was deleted while it was being watched.")
        return
    if current.status is JobStatus.SUBMITTED:
        store.set_job_status(
            job.id, JobStatus.COMPLETE if succeeded else JobStatus.FAILED
        )
