"""Read the command line given to ``sparkles-run`` (and ``sparkles sub``).

:func:`run_command` declares ``sparkles-run``'s options and help, reads them
into a :class:`RunRequest`, and shows a usage error as one line. The rest
reads the command itself, for both commands: ``^path`` tokens (upload the
file, pass its path), the choice between a shell line and an argument
vector, and an early check that the program can run when the task will run
on this machine: a name must be on ``PATH``, an absolute path must be an
executable file, and a relative path must be one of the uploaded files,
since the task runs in a folder of its own.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import shutil
import signal
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, NoReturn

import click
from rich.console import Console

from sparkles_core.cli.options import CONFIG_FILE, DEBUG, OVERRIDE
from sparkles_core.errors import InputError
from sparkles_core.submit import LocalInput

__all__ = [
    "EXIT_BAD_INPUT",
    "RunRequest",
    "check_command_exists",
    "command_line",
    "expand_caret_tokens",
    "run_command",
]

EXIT_BAD_INPUT = 2

_EPILOG = """\b
Examples:
  sparkles-run -- echo hello
  sparkles-run -u data.csv -- 'sort data.csv > sorted.csv'
  sparkles-run --timeout 600 -- python3 ^analyse.py --out result.txt

\b
A single COMMAND argument is run as a shell line; several are quoted and
run as one command. A token written ^PATH uploads that file and is
replaced by its path in the task's folder. The task runs in a folder of
its own: run an uploaded script as ./NAME or ^PATH.

\b
Exit status:
  N       the task's own exit code
  128+N   the task was killed by signal N (143 after --timeout), or
          sparkles-run itself got signal N; the task is then killed
  130     interrupted with Ctrl-C; the task is killed
  125     Sparkles could not run the task
  2       bad input or configuration; nothing was submitted

\b
Jobs, files and worker logs are kept in the state folder: $SPARKLES_HOME,
else ~/.local/share/sparkles. See them with: sparkles status"""


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
    results: tuple[str, ...]
    ignore: tuple[str, ...]
    config_file: Path | None
    overrides: tuple[str, ...]
    quiet: bool
    debug: bool


class _RunCommand(click.Command):
    """A click command whose usage errors are one line, like its other errors."""

    def main(self, *args: Any, **kwargs: Any) -> NoReturn:
        """Run the command and exit with its code."""
        kwargs["standalone_mode"] = False
        try:
            code = super().main(*args, **kwargs)
        except click.UsageError as exc:
            _say(f"sparkles-run: error: {exc.format_message()} See sparkles-run -h.")
            code = EXIT_BAD_INPUT
        except click.ClickException as exc:
            exc.show()
            code = exc.exit_code
        except click.Abort:  # Ctrl-C before the run took over the signals
            _say("sparkles: interrupted: nothing was submitted")
            code = 128 + signal.SIGINT
        sys.exit(code)


def _say(text: str) -> None:
    """Print one line on stderr, as the run itself does."""
    Console(stderr=True).print(text, markup=False, highlight=False, soft_wrap=True)


_OPTIONS = [
    click.option(
        "-u",
        "--upload",
        "uploads",
        multiple=True,
        metavar="SRC[:DST]",
        help="Upload a file or folder into the task's folder (repeatable).",
    ),
    click.option(
        "--nodes",
        type=click.IntRange(min=1),
        default=1,
        show_default=True,
        help="Workers to start; at least 1.",
    ),
    click.option("-i", "--image", default=None, help="Container image for the task."),
    click.option("-m", "--machine-type", default=None, help="Machine type of nodes."),
    click.option("-n", "--name", default=None, help="Job name (default: run-<time>)."),
    click.option(
        "--timeout",
        type=click.FloatRange(min=0, min_open=True),
        default=None,
        metavar="SECONDS",
        help="Kill the task after SECONDS.",
    ),
    click.option(
        "--dest",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("."),
        show_default=True,
        help="Folder the task's output files are written to.",
    ),
    click.option("--results", multiple=True, help="Glob of files to bring back."),
    click.option("--ignore", multiple=True, help="Glob of files not to bring back."),
    CONFIG_FILE,
    OVERRIDE,
    click.option(
        "-q", "--quiet", is_flag=True, help="Print only the task's output, and errors."
    ),
    DEBUG,
    click.argument("command", nargs=-1, required=True),
]


def run_command(run: Callable[[RunRequest], int]) -> click.Command:
    """Return the ``sparkles-run`` command, which calls ``run`` with the request."""

    def main(**options: Any) -> int:
        """Run COMMAND as a Sparkles task and exit with its exit code."""
        return run(RunRequest(**options))

    for option in reversed(_OPTIONS):
        main = option(main)
    return click.command(
        "sparkles-run",
        cls=_RunCommand,
        context_settings={"help_option_names": ["-h", "--help"]},
        epilog=_EPILOG,
    )(main)


# ``NAME=value`` before the program sets its environment.
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")

# Characters that make a word something the shell expands at run time, or
# (first in a word) shell syntax rather than a program.
_EXPANSIONS = frozenset("$`*?[~")
_SYNTAX = frozenset("();<>|&")

# Words /bin/sh runs without looking on PATH.
_SHELL_WORDS = frozenset(
    [
        ".",
        ":",
        "[",
        "alias",
        "break",
        "case",
        "cd",
        "command",
        "continue",
        "eval",
        "exec",
        "exit",
        "export",
        "false",
        "for",
        "getopts",
        "hash",
        "if",
        "read",
        "readonly",
        "return",
        "set",
        "shift",
        "source",
        "test",
        "times",
        "trap",
        "true",
        "type",
        "ulimit",
        "umask",
        "unalias",
        "unset",
        "until",
        "wait",
        "while",
        "{",
        "(",
        "!",
        "echo",
        "printf",
        "pwd",
        "kill",
    ]
)


def expand_caret_tokens(argv: Sequence[str]) -> tuple[list[str], list[LocalInput]]:
    """Replace each ``^path`` token by the path the file will have remotely.

    A token in the program's place becomes ``./name`` when it has no folder
    part, so the shell runs the uploaded file rather than looking on PATH.
    """
    words, inputs = [], []
    for index, word in enumerate(argv):
        if word.startswith("^") and len(word) > 1:
            local = Path(word[1:])
            dst = _remote_name(word[1:])
            inputs.append(LocalInput(local, dst))
            word = f"./{dst}" if index == 0 and "/" not in dst else dst
        words.append(word)
    return words, inputs


def _remote_name(path: str) -> str:
    """Keep a relative path as it is; reduce anything else to its name."""
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts:
        return pure.name
    return str(pure)


def command_line(argv: Sequence[str]) -> str:
    """Return the shell line: one argument as it is, several quoted."""
    if len(argv) == 1:
        return argv[0]
    return shlex.join(argv)


def check_command_exists(
    line: str, uploaded: Collection[str], working_dir: str = "."
) -> None:
    """Raise InputError if the line's program could not start in the task.

    Only meaningful when the task runs here. Only the program of the first
    command is checked; a line that cannot be split, shell syntax, shell
    words and words the shell expands are let through. ``uploaded`` holds the
    destinations (files or folders) of the task's inputs; ``working_dir`` is
    the folder, inside the task's folder, that the command runs in.
    """
    program = _program(line)
    if program is None or program in _SHELL_WORDS:
        return
    if program.startswith("/"):
        _check_local_file(program)
    elif "/" in program:
        _check_uploaded(program, uploaded, working_dir)
    elif shutil.which(program) is None:
        if program in uploaded:
            raise InputError(
                f"Command {program!r} is not on this machine's PATH; to run "
                f"the uploaded file, write ./{program}."
            )
        raise InputError(
            f"Command {program!r} was not found on this machine's PATH; check "
            "the spelling, install it, or upload it with -u and run it as "
            f"./{program}."
        )


def _program(line: str) -> str | None:
    """Return the first command's program, or None if it cannot be told."""
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    try:
        words = list(lexer)
    except ValueError:  # an unclosed quote: the shell will say so itself
        return None
    program = next((w for w in words if not _ASSIGNMENT.match(w)), None)
    if not program or program[0] in _SYNTAX or program.isdigit():
        return None
    if _EXPANSIONS.intersection(program):
        return None
    return program


def _check_local_file(program: str) -> None:
    """Raise InputError unless ``program`` is an executable file here."""
    path = Path(program)
    if not path.is_file():
        raise InputError(
            f"Command {program!r} does not exist on this machine; check the "
            f"path, or upload the file with -u or as ^{program}."
        )
    if not os.access(path, os.X_OK):
        raise InputError(
            f"Command {program!r} is not executable; run chmod +x on it, or "
            f"run it through its interpreter (sh {program})."
        )


def _check_uploaded(program: str, uploaded: Collection[str], working_dir: str) -> None:
    """Raise InputError unless the relative ``program`` is an uploaded file."""
    remote = posixpath.normpath(posixpath.join(working_dir, program))
    for dst in uploaded:
        dst = posixpath.normpath(dst)
        if dst in (".", remote) or remote.startswith(f"{dst}/"):
            return
    if not Path(program).is_file():
        hint = "check the path, or upload the file with -u"
    elif remote.startswith("../"):
        hint = f"upload it with -u {program} and run it as ./{Path(program).name}"
    else:
        upload = program if "/" not in remote else f"{program}:{remote}"
        hint = f"upload it with -u {upload}, or write it as ^{program}"
    raise InputError(
        f"Command {program!r} is not among the uploaded files, and the task "
        f"runs in a folder of its own; {hint}."
    )
