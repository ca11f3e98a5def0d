"""What each task of ``sparkles sub`` gets: parameters, a command, input files.

Each task of a job gets one row of parameters. ``--params FILE`` gives one row
per CSV record, with the header naming the columns; ``--seq N`` gives the rows
``index=0`` to ``index=N-1``; CSV names and values are stripped of the
spaces around them. In the command, ``{name}`` stands for the task's value
of ``name`` (a column named ``my col`` is written ``{my col}``) and a
``{name}`` that names no column is refused; ``{{`` and ``}}`` stand for
literal braces, and ``${name}`` is left alone for the shell. A ``^path``
word of the command, after the placeholders are filled, uploads that file
for its task alone; ``-u`` inputs go to every task.
"""

from __future__ import annotations

import csv
import functools
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from sparkles_cas.cas import UploadReport
from sparkles_core.cli.tables import plural
from sparkles_core.errors import InputError
from sparkles_core.models import Download, TaskSpec, UploadRules
from sparkles_core.run_args import command_line, expand_caret_tokens
from sparkles_core.submit import LocalInput, parse_push

if TYPE_CHECKING:
    from sparkles_core.client import Client

__all__ = [
    "ParamTable",
    "TaskCommand",
    "fill_placeholders",
    "plan_commands",
    "read_params_csv",
    "read_pushes",
    "sequence",
    "stage_tasks",
]

# A name must start like an identifier so that shell brace expansion such as
# ``file.{txt,bak}`` and awk blocks such as ``{print $1}`` are not mistaken
# for placeholders. A column whose name is not like that (``my col``) is
# added to the pattern by name, so only its exact name is a placeholder.
_NAME = r"[A-Za-z_][A-Za-z0-9_.-]*"
_TOKEN = re.compile(rf"\{{\{{|\}}\}}|(?<!\$)\{{({_NAME})\}}")


def _placeholders(columns: Iterable[str]) -> re.Pattern[str]:
    """Return the pattern of placeholders, braces and the columns' names."""
    odd = sorted((c for c in columns if not re.fullmatch(_NAME, c)), key=len)
    if not odd:
        return _TOKEN
    names = "|".join(re.escape(name) for name in reversed(odd))
    return re.compile(rf"\{{\{{|\}}\}}|(?<!\$)\{{({names}|{_NAME})\}}")


@dataclass(frozen=True)
class ParamTable:
    """Rows of parameters, one per task, and where they came from."""

    source: str
    columns: tuple[str, ...]
    rows: tuple[dict[str, str], ...]

    @functools.cached_property
    def pattern(self) -> re.Pattern[str]:
        """Return the pattern that finds this table's placeholders."""
        return _placeholders(self.columns)

    def check_placeholders(self, words: Iterable[str]) -> None:
        """Raise InputError if a placeholder in ``words`` names no column."""
        for word in words:
            for match in self.pattern.finditer(word):
                name = match.group(1)
                if name is not None and name not in self.columns:
                    raise InputError(
                        f"The command uses {{{name}}} but {self.source} has no "
                        f"column {name!r}; columns available: "
                        f"{', '.join(self.columns)}. Write {{{{ and }}}} for "
                        "literal braces."
                    )


def sequence(count: int) -> ParamTable:
    """Return the rows ``index=0`` to ``index=count-1``."""
    rows = tuple({"index": str(index)} for index in range(count))
    return ParamTable("--seq", ("index",), rows)


def read_params_csv(path: Path) -> ParamTable:
    """Return the rows of a UTF-8 CSV file whose first line names the columns."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            records = _records(handle, path)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"Parameter file {str(path)!r} is not UTF-8 text (byte {exc.start} "
            "cannot be read); save it as UTF-8."
        ) from exc
    except OSError as exc:
        raise InputError(
            f"Cannot read parameter file {str(path)!r}: {exc.strerror}; check the path."
        ) from exc
    if not records:
        raise InputError(
            f"Parameter file {str(path)!r} is empty; its first line must name "
            "the columns and each further line gives one task."
        )
    (_, header), *body = records
    columns = _check_header(header, path)
    if not body:
        raise InputError(
            f"Parameter file {str(path)!r} has a header but no rows; add one "
            "line per task."
        )
    rows = tuple(_row(columns, fields, line, path) for line, fields in body)
    return ParamTable(f"parameter file {str(path)!r}", columns, rows)


def _records(handle: TextIO, path: Path) -> list[tuple[int, list[str]]]:
    """Return the non-blank records, each with the line it ends on."""
    reader = csv.reader(handle)
    records = []
    try:
        for fields in reader:
            if fields:
                records.append((reader.line_num, fields))
    except csv.Error as exc:
        raise InputError(
            f"Parameter file {str(path)!r}, line {reader.line_num}: {exc}; "
            "fix the quoting."
        ) from exc
    return records


def _check_header(header: Sequence[str], path: Path) -> tuple[str, ...]:
    """Return the column names, refusing blank or repeated ones."""
    columns = tuple(name.strip() for name in header)
    if any(not name for name in columns):
        raise InputError(
            f"Parameter file {str(path)!r}: the header has a blank column "
            "name; name every column."
        )
    repeated = sorted({name for name in columns if columns.count(name) > 1})
    if repeated:
        raise InputError(
            f"Parameter file {str(path)!r}: column {repeated[0]!r} appears "
            "more than once in the header; give each column its own name."
        )
    return columns


def _row(
    columns: tuple[str, ...], fields: Sequence[str], line: int, path: Path
) -> dict[str, str]:
    """Return one record as a row, refusing a record of the wrong width."""
    if len(fields) != len(columns):
        raise InputError(
            f"Parameter file {str(path)!r}, line {line}: "
            f"{plural(len(fields), 'field')} but the header names "
            f"{plural(len(columns), 'column')}; quote values that "
            "contain commas."
        )
    return dict(zip(columns, (value.strip() for value in fields), strict=True))


def fill_placeholders(
    words: Sequence[str], row: Mapping[str, str], pattern: re.Pattern[str] = _TOKEN
) -> list[str]:
    """Return ``words`` with each ``{name}`` replaced by the row's value."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name is None:
            return match.group(0)[0]
        return row[name]

    return [pattern.sub(replace, word) for word in words]


@dataclass(frozen=True)
class TaskCommand:
    """One task's command line, its parameters and its ``^path`` inputs."""

    line: str
    parameters: dict[str, str]
    inputs: tuple[LocalInput, ...]


def plan_commands(argv: Sequence[str], table: ParamTable | None) -> list[TaskCommand]:
    """Return one command per row of ``table``, or a single one without it."""
    if table is None:
        words, inputs = expand_caret_tokens(argv)
        return [TaskCommand(command_line(words), {}, tuple(inputs))]
    table.check_placeholders(argv)
    commands = []
    for row in table.rows:
        filled = fill_placeholders(argv, row, table.pattern)
        words, inputs = expand_caret_tokens(filled)
        commands.append(TaskCommand(command_line(words), dict(row), tuple(inputs)))
    return commands


def read_pushes(values: Sequence[str]) -> list[LocalInput]:
    """Parse ``-u`` values: ``SRC``, ``SRC:DST`` or ``@LISTFILE``."""
    inputs: list[LocalInput] = []
    for value in values:
        if value.startswith("@"):
            inputs.extend(parse_push(line) for line in _list_lines(Path(value[1:])))
        else:
            inputs.append(parse_push(value))
    return inputs


def _list_lines(path: Path) -> list[str]:
    """Return the entries of a list file: one per line, ``#`` starts a comment."""
    try:
        # utf-8-sig: editors on Windows start UTF-8 files with a BOM.
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise InputError(
            f"Cannot read upload list {str(path)!r}: {why}; give -u @FILE with "
            "one SRC[:DST] per line."
        ) from exc
    lines = (line.strip() for line in text.splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def stage_tasks(
    client: Client,
    commands: Sequence[TaskCommand],
    pushes: Sequence[LocalInput],
    working_dir: str,
    rules: UploadRules,
) -> tuple[list[TaskSpec], UploadReport]:
    """Upload every input once; return the task specs and the upload report."""
    unique = dict.fromkeys([*pushes, *(i for c in commands for i in c.inputs)])
    _, report = client.upload(list(unique))
    shared = _downloads(pushes, report)
    by_inputs: dict[tuple[LocalInput, ...], list[Download]] = {}
    specs = []
    for command in commands:
        if command.inputs not in by_inputs:
            own = _downloads(command.inputs, report)
            by_inputs[command.inputs] = _merge([*shared, *own])
        spec = TaskSpec(
            command=command.line,
            parameters=command.parameters,
            working_dir=working_dir,
            downloads=by_inputs[command.inputs],
            uploads=rules,
        )
        specs.append(spec)
    return specs, report


def _downloads(inputs: Sequence[LocalInput], report: UploadReport) -> list[Download]:
    """Return the downloads of uploaded inputs, folders as the files under them."""
    downloads = []
    for item in inputs:
        for path, dst in _files_of(item):
            digest = report.digests.get(path)
            if digest is None:
                raise InputError(
                    f"File {str(path)!r} appeared while its folder was being "
                    "uploaded; submit again once it stops changing."
                )
            downloads.append(
                Download(
                    dst=dst,
                    digest=digest.digest,
                    size=digest.size,
                    executable=digest.executable,
                )
            )
    return downloads


def _files_of(item: LocalInput) -> list[tuple[Path, str]]:
    """Return the files an input stands for, as the CAS upload walks them."""
    if not item.path.is_dir():
        return [(item.path, item.dst)]
    files = sorted(path for path in item.path.rglob("*") if path.is_file())
    return [
        (path, f"{item.dst}/{path.relative_to(item.path).as_posix()}") for path in files
    ]


def _merge(downloads: Sequence[Download]) -> list[Download]:
    """Return the downloads with duplicates dropped; refuse two files at one path."""
    by_dst: dict[str, Download] = {}
    for download in downloads:
        seen = by_dst.setdefault(download.dst, download)
        if seen.digest != download.digest:
            raise InputError(
                f"Two different files would be placed at {download.dst!r} in "
                "the task's folder; give one of them another destination."
            )
    return list(by_dst.values())
