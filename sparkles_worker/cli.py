"""The ``sparkles-worker`` command: the daemon each node runs."""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType

import click

from sparkles_cas.cas import CAS
from sparkles_cas.errors import StorageError
from sparkles_core.errors import SparklesError
from sparkles_core.plugins import open_storage, open_store
from sparkles_worker.container import RUNTIMES, node_has_gpus
from sparkles_worker.loop import PREEMPTED, Worker, WorkerOptions

__all__ = ["main"]

logger = logging.getLogger(__name__)


@click.group()
@click.option("--debug", is_flag=True, help="Log debug detail.")
def main(debug: bool) -> None:
    """Run Sparkles tasks on this node."""
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@main.command()
@click.option("--store", "store_url", required=True, help="Job and task store URL.")
@click.option("--storage", "storage_url", required=True, help="Storage root URL.")
@click.option(
    "--cas",
    "cas_url",
    default=None,
    help="Storage URL of the CAS (default: STORAGE/cas).",
)
@click.option("--cluster", required=True, help="Cluster whose tasks to claim.")
@click.option("--node-id", default=None, help="This node's name (owner of claims).")
@click.option(
    "--work-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("sparkles-work"),
    show_default=True,
    help="Folder for task folders.",
)
@click.option(
    "--cache-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Node-level CAS cache (default: WORK_DIR/cache).",
)
@click.option("--lease", default=60.0, show_default=True, help="Lease length, s.")
@click.option("--linger", default=10.0, show_default=True, help="Idle time to exit, s.")
@click.option("--log-interval", default=5.0, show_default=True, help="Log upload, s.")
@click.option("--max-tasks", type=int, default=None, help="Exit after this many.")
@click.option(
    "--container-runtime",
    type=click.Choice(RUNTIMES),
    default=None,
    help="Run tasks whose job names an image in a container (default: none).",
)
def consume(
    store_url: str,
    storage_url: str,
    cas_url: str | None,
    cluster: str,
    node_id: str | None,
    work_dir: Path,
    cache_dir: Path | None,
    lease: float,
    linger: float,
    log_interval: float,
    max_tasks: int | None,
    container_runtime: str | None,
) -> None:
    """Claim and run the cluster's tasks until idle for LINGER seconds.

    Example: sparkles-worker consume --store sqlite:///tmp/s.db
    --storage file:///tmp/storage --cluster c-1234
    """
    options = WorkerOptions(
        cluster=cluster,
        node_id=node_id or f"{socket.gethostname()}-{os.getpid()}",
        work_dir=work_dir.absolute(),
        cache_dir=(cache_dir or work_dir / "cache").absolute(),
        lease_s=lease,
        linger_s=linger,
        log_interval_s=log_interval,
        max_tasks=max_tasks,
        container_runtime=container_runtime,
        gpus=container_runtime is not None and node_has_gpus(),
    )
    try:
        storage = open_storage(storage_url)
        cas = CAS(open_storage(cas_url), prefix="") if cas_url else CAS(storage)
        worker = Worker(open_store(store_url), storage, options, cas)
        _on_stop_signals(worker)
        worker.run()
    except (SparklesError, StorageError) as exc:
        logger.error("Worker %s: %s", options.node_id, exc)
        sys.exit(1)


def _on_stop_signals(worker: Worker) -> None:
    def handle(signum: int, _frame: FrameType | None) -> None:
        logger.info("Worker: %s received", signal.Signals(signum).name)
        worker.request_stop(PREEMPTED)

    signal.signal(signal.SIGTERM, handle)
    signal.signal(signal.SIGINT, handle)
