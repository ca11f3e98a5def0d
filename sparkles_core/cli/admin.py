"""Commands about Sparkles itself: ``version`` and ``validate``.

The engine's modules are imported where they are used, which keeps
``sparkles --help`` quick.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import click

from sparkles_core import layout
from sparkles_core.cli.context import CliContext, pass_context
from sparkles_core.cli.tables import Column, print_table, status_style

if TYPE_CHECKING:
    from sparkles_cas.storage import ObjectStorage
    from sparkles_core.cluster.base import WorkerLaunch
    from sparkles_core.config import Config
    from sparkles_core.models import Job, NodeReq
    from sparkles_core.store.base import Store

__all__ = ["validate", "version"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# What became of each part; a part that could not be tried is neither.
OK, FAILED, SKIPPED = "ok", "FAILED", "skipped"


@click.command()
@pass_context
def version(state: CliContext) -> None:
    """Print the Sparkles version.

    Example: sparkles version
    """
    from sparkles_core import __version__

    state.say(__version__)


@dataclass(frozen=True)
class Verdict:
    """How one part of the configuration fared."""

    part: str
    url: str
    result: str
    detail: str

    @property
    def passed(self) -> bool:
        """Return True if the part works."""
        return self.result == OK

    @property
    def failed(self) -> bool:
        """Return True if the part was tried and does not work."""
        return self.result == FAILED


class ProbeFailed(Exception):
    """A probe saw something wrong that raised no error by itself."""


@click.command()
@click.option(
    "--timeout",
    type=click.FloatRange(min=1),
    metavar="SECONDS",
    default=600.0,
    show_default=True,
    help="Seconds to wait for the probe node (cloud nodes take minutes).",
)
@pass_context
def validate(state: CliContext, timeout: float) -> None:
    """Check that the configured store, storage and cluster work.

    Writes, reads and deletes a probe job in the store and a probe object
    in storage (and in the CAS, when cas_url_prefix moves it); then starts
    one worker node, waits until it has run a probe task, and stops it.
    Says which part failed, with the error, and exits 0 only if every part
    works.

    Example: sparkles validate
    """
    config = state.config()
    probe = f"validate-{secrets.token_hex(4)}"
    store_verdict, store = _attempt(
        "store", config.store_url, lambda: _probe_store(config.store_url, probe)
    )
    storage_verdict, storage = _attempt(
        "storage", config.storage_url, lambda: _probe_storage(config.storage_url, probe)
    )
    verdicts = [store_verdict, storage_verdict]
    if config.cas_url_prefix:
        # A CAS moved elsewhere (another bucket, say) is a part of its own.
        cas_url = config.cas_url
        verdicts.append(
            _attempt("cas", cas_url, lambda: _probe_storage(cas_url, probe))[0]
        )
    if store is None or storage is None:
        needs = "needs a working store and storage"
        verdicts.append(Verdict("cluster", config.cluster_url, SKIPPED, needs))
    else:
        cluster = _ClusterProbe(config, store, storage, probe, timeout)
        verdicts.append(_attempt("cluster", config.cluster_url, cluster)[0])
    if store is not None:
        store.close()
    _report(state, verdicts)


def _report(state: CliContext, verdicts: list[Verdict]) -> None:
    """Print the verdicts; exit 1 unless every part passed."""
    columns = [
        Column("part"),
        Column("url"),
        Column("result", style=status_style),
        Column("detail"),
    ]
    rows = [[v.part, v.url, v.result, v.detail] for v in verdicts]
    print_table(state.console, columns, rows)
    failed = [v.part for v in verdicts if v.failed]
    skipped = [v.part for v in verdicts if v.result == SKIPPED]
    if failed or skipped:
        line = (
            f"Validation failed: {', '.join(failed)}"
            if failed
            else "Validation incomplete"
        )
        if skipped:
            line += f"; skipped: {', '.join(skipped)}"
        state.warn(line + ".")
        click.get_current_context().exit(1)
    state.say("Every part works.")


def _attempt(
    part: str, url: str, probe: Callable[[], tuple[str, T]]
) -> tuple[Verdict, T | None]:
    """Run one probe and turn what it raised into a verdict."""
    started = time.monotonic()
    try:
        detail, value = probe()
    # Validation exists to report whatever breaks, including errors a cloud
    # client raises that no backend translated; each is shown with its type.
    except Exception as exc:
        logger.debug("Validate %s: failed", part, exc_info=True)
        return Verdict(part, url, FAILED, f"{type(exc).__name__}: {exc}"), None
    elapsed = time.monotonic() - started
    return Verdict(part, url, OK, f"{detail} ({elapsed:.1f} s)"), value


def _probe_store(url: str, probe: str) -> tuple[str, Store]:
    """Round-trip a one-task job through the store; return it, open."""
    from sparkles_core.models import TaskSpec
    from sparkles_core.plugins import open_store

    store = open_store(url)
    try:
        job_id = f"{probe}-store"
        store.create_job(_probe_job(job_id), [TaskSpec(command="true")])
        found = store.get_job(job_id)
        tasks = store.list_tasks(job_id)
        store.delete_job(job_id)
        if found is None or len(tasks) != 1 or store.get_job(job_id) is not None:
            raise ProbeFailed(f"probe job {job_id!r} did not read back as written")
    except BaseException:
        store.close()
        raise
    return "created, read and deleted a probe job", store


def _probe_storage(url: str, probe: str) -> tuple[str, ObjectStorage]:
    """Round-trip a small object through the storage; return it."""
    from sparkles_core.plugins import open_storage

    storage = open_storage(url)
    key, data = f"validate/{probe}", f"sparkles validate {probe}\n".encode()
    storage.put_bytes(key, data)
    read = storage.get_bytes(key)
    storage.delete([key])
    if read != data or storage.exists(key):
        raise ProbeFailed(f"probe object {storage.url_of(key)!r} did not round-trip")
    return "wrote, read and deleted a probe object", storage


def _probe_job(job_id: str) -> Job:
    """Return a job record that no real cluster's workers would claim."""
    from sparkles_core.models import Job

    return Job(
        id=job_id,
        cluster=job_id,
        spec_hash="",
        submit_time=time.time(),
        task_count=1,
    )


@dataclass(frozen=True)
class _ClusterProbe:
    """Start one node, wait until it has run a probe task, stop it."""

    config: Config
    store: Store
    storage: ObjectStorage
    job_id: str
    timeout: float

    def __call__(self) -> tuple[str, None]:
        """Run the probe; raise if the node did not run the task."""
        from sparkles_core.cluster.base import ClusterContext
        from sparkles_core.models import NodeClass, TaskSpec
        from sparkles_core.plugins import open_cluster

        provisioner = open_cluster(ClusterContext.from_config(self.config, self.store))
        try:
            self.store.create_job(_probe_job(self.job_id), [TaskSpec(command="true")])
            started = provisioner.add_nodes(self._launch(), 1, NodeClass.STANDARD)
            if not started:
                raise ProbeFailed(
                    "no zone had room for a node just now; try again later "
                    "or list more zones in the zones key"
                )
            [node] = started
            self._wait(node, lambda: _any_alive(provisioner.refresh(self.job_id)))
        finally:
            provisioner.stop_cluster(self.job_id)
            provisioner.close()
            self._clean_up()
        return "a node started, ran a probe task and stopped", None

    def _launch(self) -> WorkerLaunch:
        """Return how the probe node starts its worker."""
        from sparkles_core.cluster.base import WorkerLaunch

        return WorkerLaunch(
            cluster_id=self.job_id,
            store_url=self.config.store_url,
            storage_url=self.config.storage_url,
            machine=self.config.machine_spec(),
            image=self.config.default_image,
            job_id=self.job_id,
            linger_s=self.config.worker_linger,
            cas_url=self.config.cas_url_prefix,
        )

    def _wait(self, node: NodeReq, alive: Callable[[], bool]) -> None:
        """Return once the probe task succeeded; raise if it cannot."""
        from sparkles_core.client import MonitorTiming

        interval = MonitorTiming.for_cluster(self.config.cluster_url).progress
        deadline = time.monotonic() + self.timeout
        while not self._task_done():
            if not alive() and not self._task_done():
                raise ProbeFailed(
                    f"node {node.id} stopped before running the probe task; "
                    "see the worker's log on that node"
                )
            if time.monotonic() > deadline:
                raise ProbeFailed(f"no node ran the probe task in {self.timeout:g} s")
            time.sleep(interval)

    def _task_done(self) -> bool:
        task = self.store.get_task(f"{self.job_id}.1")
        if task is None or not task.status.finished:
            return False
        if not task.succeeded:
            reason = task.failure_reason or f"exit code {task.exit_code}"
            raise ProbeFailed(f"the probe task ended {task.status.value}: {reason}")
        return True

    def _clean_up(self) -> None:
        self.store.delete_job(self.job_id)
        prefix = layout.job_prefix(self.job_id)
        self.storage.delete([info.key for info in self.storage.list(prefix)])


def _any_alive(nodes: Sequence[NodeReq]) -> bool:
    return any(node.status.alive for node in nodes)
