"""How the commands show tasks and numbers: tables, plain text, CSV, JSON.

On a terminal a table is drawn by rich; when the output is piped or
redirected the same rows come out as aligned plain text (no colours, no box
characters), one line per row, ready for ``grep``. Empty cells are written
``-`` so that no column looks missing. Data meant for programs goes out as
CSV or JSON instead (``show --csv``, ``list``).

The models and rich's tables are imported where they are used, which keeps
``sparkles --help`` quick.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console, RenderableType

if TYPE_CHECKING:
    from sparkles_core.models import Task

__all__ = [
    "Column",
    "Filter",
    "Outcome",
    "as_text",
    "check_path",
    "describe_exit",
    "exit_style",
    "flatten",
    "format_bytes",
    "format_duration",
    "format_time",
    "lookup",
    "outcome_of",
    "parse_fields",
    "parse_filter",
    "plural",
    "print_table",
    "render_records",
    "status_style",
    "to_csv",
    "to_json",
    "write_text",
]

EMPTY = "-"


class Outcome(StrEnum):
    """What became of a task: its status, with ``complete`` split in two."""

    PENDING = "pending"
    CLAIMED = "claimed"
    OK = "ok"
    NONZERO = "nonzero"
    FAILED = "failed"
    KILLED = "killed"

    @property
    def problem(self) -> bool:
        """Return True for a task that ran and failed, or could not run."""
        return self in (Outcome.NONZERO, Outcome.FAILED)


def outcome_of(task: Task) -> Outcome:
    """Return the task's outcome; a signal counts as a non-zero exit."""
    from sparkles_core.models import TaskStatus

    if task.status is TaskStatus.COMPLETE:
        return Outcome.OK if task.succeeded else Outcome.NONZERO
    return Outcome(task.status.value)


@dataclass(frozen=True)
class Column:
    """A table column: its header, whether its values are numbers, and the
    colour of each value on a terminal (``style`` maps a value to a rich
    style, "" for none)."""

    header: str
    numeric: bool = False
    style: Callable[[str], str] | None = None


# Green for done well, red for done badly, yellow for not done yet.
_STATUS_STYLES = {
    "ok": "green",
    "complete": "green",
    "nonzero": "red",
    "failed": "red",
    "killed": "magenta",
    "pending": "yellow",
    "claimed": "yellow",
    "running": "yellow",
    "skipped": "yellow",
}


def status_style(value: str) -> str:
    """Return the colour of a task outcome, a job state or a verdict."""
    return _STATUS_STYLES.get(value.lower(), "")


def exit_style(value: str) -> str:
    """Return the colour of an exit code: green for 0, red for the rest."""
    if value in ("", EMPTY):
        return ""
    return "green" if value == "0" else "red"


def print_table(
    console: Console,
    columns: Sequence[Column],
    rows: Iterable[Sequence[str]],
    title: str | None = None,
) -> None:
    """Print rows as a table on a terminal, else as aligned plain text."""
    cells = [[cell or EMPTY for cell in row] for row in rows]
    if console.is_terminal:
        console.print(_rich_table(columns, cells, title))
        return
    if title:
        write_text(console, title)
    write_text(console, "\n".join(_aligned(columns, cells)))


def _rich_table(
    columns: Sequence[Column], rows: list[list[str]], title: str | None
) -> RenderableType:
    """Return a rich table: no side borders, so ten columns fit 80 characters."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(title) if title else None,
        title_justify="left",
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        highlight=False,
    )
    for index, column in enumerate(columns):
        table.add_column(
            column.header,
            justify="right" if column.numeric else "left",
            no_wrap=index == 0,  # the first column names the row: keep it whole
        )
    for row in rows:
        # Text, not str: a command such as "echo [red]" is not markup.
        table.add_row(
            *(
                Text(cell, style=column.style(cell) if column.style else "")
                for cell, column in zip(row, columns, strict=True)
            )
        )
    return table


def _aligned(columns: Sequence[Column], rows: list[list[str]]) -> list[str]:
    """Return header and rows as lines with columns padded to one width."""
    lines = [[column.header for column in columns], *rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns))]
    out = []
    for line in lines:
        cells = [
            cell.rjust(width) if column.numeric else cell.ljust(width)
            for cell, width, column in zip(line, widths, columns, strict=True)
        ]
        out.append("  ".join(cells).rstrip())
    return out


def write_text(console: Console, text: str) -> None:
    """Write text as it is: no markup, highlighting or wrapping."""
    # Rendering through rich costs about half a second per megabyte, and a
    # dump of many tasks needs none of it: the text goes to the file as is.
    console.file.write(text + "\n")
    console.file.flush()


def to_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """Return the header and rows as CSV text."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


def to_json(records: Sequence[Mapping[str, Any]]) -> str:
    """Return the records as an indented JSON list."""
    return json.dumps(list(records), indent=2)


def lookup(record: Mapping[str, Any], path: str) -> Any:
    """Return the value at a dotted path such as ``spec.parameters.x``.

    A path that leads nowhere gives None.
    """
    value: Any = record
    for part in path.split("."):
        if isinstance(value, Mapping):
            value = value.get(part)
        elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
            value = value[int(part)]
        else:
            return None
    return value


def as_text(value: Any) -> str:
    """Return a record value as text: strings as they are, the rest as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def check_path(path: str) -> str:
    """Return ``path`` if it is a dotted path into a task record."""
    from sparkles_core.models import Task

    parts = path.split(".")
    if not all(parts) or parts[0] not in Task.model_fields:
        known = ", ".join(Task.model_fields)
        raise click.BadParameter(
            f"{path!r} is not a field of a task record; start from one of: {known}."
        )
    return path


@dataclass(frozen=True)
class Filter:
    """Keep records whose value at ``path`` is ``value`` (or, negated, is not)."""

    path: str
    value: str
    negate: bool = False

    def matches(self, record: Mapping[str, Any]) -> bool:
        """Return True if ``record`` passes this filter."""
        return (as_text(lookup(record, self.path)) == self.value) != self.negate


def parse_filter(text: str) -> Filter:
    """Parse ``PATH=VALUE`` or ``PATH!=VALUE``."""
    path, sep, value = text.partition("!=")
    if sep:
        return Filter(check_path(path), value, negate=True)
    path, sep, value = text.partition("=")
    if not sep:
        raise click.BadParameter(
            f"{text!r} has no '=' or '!='; write PATH=VALUE or PATH!=VALUE."
        )
    return Filter(check_path(path), value)


def parse_fields(text: str | None) -> list[str] | None:
    """Parse a comma-separated list of dotted paths; None means every field."""
    if text is None:
        return None
    fields = [part.strip() for part in text.split(",") if part.strip()]
    if not fields:
        raise click.BadParameter("give at least one field, such as id,status.")
    return [check_path(field) for field in fields]


def flatten(record: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Return the leaves of nested mappings, keyed by dotted path."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        if isinstance(value, Mapping):
            flat.update(flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def render_records(
    records: Sequence[Mapping[str, Any]], fields: Sequence[str] | None, fmt: str
) -> str:
    """Return the records, or only ``fields`` of them, as JSON or CSV."""
    if fields is not None:
        records = [{field: lookup(r, field) for field in fields} for r in records]
    if fmt == "json":
        return to_json(records)
    flat = [flatten(record) for record in records]
    header = list(dict.fromkeys(key for record in flat for key in record))
    rows = [[as_text(record.get(key)) for key in header] for record in flat]
    return to_csv(header, rows)


def plural(count: int, noun: str) -> str:
    """Return ``count`` with ``noun``, adding an s unless there is one."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def describe_exit(task: Task) -> str:
    """Return how the command ended: its exit code, its signal or its timeout."""
    if task.timed_out:
        return "timed out"
    if task.signal is not None:
        return f"signal {task.signal}"
    return "" if task.exit_code is None else str(task.exit_code)


def format_duration(seconds: float | None) -> str:
    """Return a duration for people: ``7 ms``, ``4.20 s``, ``3 m 05 s``."""
    if seconds is None:
        return ""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.2f} s"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} m {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} m"


def format_bytes(size: float | None) -> str:
    """Return a size for people, in powers of 1024: ``12.3 MiB``."""
    if size is None:
        return ""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(size) < 1024:
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"


def format_time(timestamp: float | None) -> str:
    """Return a POSIX time as local ``YYYY-mm-dd HH:MM:SS``."""
    if timestamp is None:
        return ""
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(timestamp))
