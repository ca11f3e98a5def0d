"""Every ``sparkles`` subcommand, in the order ``--help`` lists them."""

from __future__ import annotations

import click

from sparkles_core.cli import (
    admin,
    inspect,
    manage,
    setup,
    submit,
    summary,
    tasks,
    watch,
)

__all__ = ["ALL"]

ALL: list[click.Command] = [
    admin.version,
    submit.sub,
    watch.watch,
    inspect.status,
    inspect.logs,
    tasks.show,
    tasks.list_tasks,
    manage.fetch,
    manage.kill,
    manage.reset,
    manage.delete,
    summary.summarize,
    summary.summarize_job_metrics,
    admin.validate,
    setup.setup,
]
