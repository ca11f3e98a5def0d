"""Commands that list a job's tasks: ``show`` as a table, ``list`` as records.

Task outcomes are shown in the words of :class:`~.tables.Outcome`, as
``status`` shows them.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sparkles_core.cli.context import CliContext, pass_context
from sparkles_core.cli.tables import (
    Column,
    Filter,
    describe_exit,
    exit_style,
    outcome_of,
    parse_fields,
    parse_filter,
    plural,
    print_table,
    render_records,
    status_style,
    to_csv,
    write_text,
)

if TYPE_CHECKING:
    from sparkles_core.models import Task

__all__ = ["list_tasks", "show"]

logger = logging.getLogger(__name__)


@click.command()
@click.argument("job_id", metavar="JOB")
@click.option("--params", "params_only", is_flag=True, help="Only parameter columns.")
@click.option("--csv", "as_csv", is_flag=True, help="Write CSV instead of a table.")
@click.option(
    "-i", "--incomplete", is_flag=True, help="Only pending and claimed tasks."
)
@click.option("-e", "--exitcode", is_flag=True, help="Add the exit code (or signal).")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    metavar="FILE",
    help="Write the table to FILE as CSV instead of showing it.",
)
@pass_context
def show(
    state: CliContext,
    job_id: str,
    params_only: bool,
    as_csv: bool,
    incomplete: bool,
    exitcode: bool,
    out: Path | None,
) -> None:
    """Show a job's tasks with their parameters as columns.

    With --csv (or --out) the table is written as CSV; its own columns are
    named sparkles_task, sparkles_status and sparkles_exit so they never
    clash with a parameter, and '--params --csv' gives a table that
    'sparkles sub --params' takes back. JOB may be LAST.

    \b
    Examples:
      sparkles show LAST --incomplete
      sparkles show LAST --params --out redo.csv
    """
    from sparkles_core.models import TaskStatus

    job = state.job(job_id)
    statuses = [TaskStatus.PENDING, TaskStatus.CLAIMED] if incomplete else None
    tasks = state.client.tasks(job.id, statuses)
    names = list(dict.fromkeys(k for t in tasks for k in t.spec.parameters))
    fixed = [] if params_only else ["task", "status"]
    fixed += ["exit"] if exitcode else []
    rows = [_show_row(task, fixed, names) for task in tasks]
    if as_csv or out is not None:
        header = [f"sparkles_{name}" for name in fixed] + names
        what = f"{plural(len(rows), 'task')} of job {job.id}"
        _write(state, to_csv(header, rows), out, what)
        return
    if not rows:
        state.say(f"Job {job.id}: no tasks to show.")
        return
    styles = {"status": status_style, "exit": exit_style}
    columns = [Column(name, style=styles.get(name)) for name in fixed]
    columns += [Column(name) for name in names]
    print_table(state.console, columns, rows)


def _show_row(task: Task, fixed: Sequence[str], names: Sequence[str]) -> list[str]:
    values = {
        "task": task.id,
        "status": outcome_of(task).value,
        "exit": describe_exit(task),
    }
    params = task.spec.parameters
    return [values[name] for name in fixed] + [params.get(n, "") for n in names]


@click.command(name="list")
@click.argument("job_id", metavar="JOB")
@click.option(
    "--filter",
    "filters",
    multiple=True,
    callback=lambda ctx, param, value: [parse_filter(text) for text in value],
    metavar="PATH=VALUE",
    help="Keep tasks whose field equals (=) or differs from (!=) VALUE; "
    "repeatable, all must hold.",
)
@click.option(
    "--fields",
    callback=lambda ctx, param, value: parse_fields(value),
    metavar="PATH,...",
    help="Only these fields, by dotted path (default: whole records).",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["json", "csv"]),
    default="json",
    show_default=True,
    help="Output format.",
)
@click.option(
    "--params",
    "params_only",
    is_flag=True,
    help="Only each task's parameters (in CSV, a table that 'sparkles sub "
    "--params' takes back).",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to FILE instead of stdout.",
)
@pass_context
def list_tasks(
    state: CliContext,
    job_id: str,
    filters: list[Filter],
    fields: list[str] | None,
    fmt: str,
    params_only: bool,
    output: Path | None,
) -> None:
    """Dump a job's task records as JSON or CSV.

    A PATH is a dotted path into a task record: status, exit_code,
    spec.parameters.x, usage.max_rss_bytes, history.0.time. Values compare
    as text; a missing value is the empty text. In CSV, nested fields
    become dotted columns. JOB may be LAST.

    \b
    Examples:
      sparkles list LAST --filter status=complete --filter 'exit_code!=0'
      sparkles list LAST --fields id,spec.parameters.x,exit_code --format csv
      sparkles list LAST --filter status=failed --params --format csv
    """
    if params_only and fields is not None:
        raise click.UsageError("Give --params or --fields, not both.")
    job = state.job(job_id)
    records = [task.model_dump(mode="json") for task in state.client.tasks(job.id)]
    kept = [r for r in records if all(f.matches(r) for f in filters)]
    if params_only:
        kept = [record["spec"]["parameters"] for record in kept]
    text = render_records(kept, fields, fmt)
    _write(state, text, output, f"{plural(len(kept), 'task')} of job {job.id}")


def _write(state: CliContext, text: str, path: Path | None, what: str) -> None:
    """Write ``text`` to stdout, or whole to ``path`` saying what was written."""
    if path is None:
        write_text(state.console, text.rstrip("\n"))
        return
    # Written beside the target and renamed over it, so that a failed write
    # (a full disk) leaves no half-written file under the name asked for.
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(text if text.endswith("\n") else text + "\n")
        partial.replace(path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        # Name the file the user asked for, not the one beside it.
        raise type(exc)(exc.errno, exc.strerror, str(path)) from exc
    state.say(f"Wrote {what} to {path}.")
