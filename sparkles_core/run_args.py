"""Read the command line given to ``sparkles-run`` (and ``sparkles sub``).

Handles ``^path`` tokens (upload the file, pass its path), the choice between
a shell line and an argument vector, and an early check that the program can
run when the task will run on this machine: a name must be on ``PATH``, an
absolute path must be an executable file, and a relative path must be one of
the uploaded files, since the task runs in a folder of its own.
"""

from __future__ import annotations

import os
import posixpath
import re
import shlex
import shutil
from collections.abc import Collection, Sequence
from pathlib import Path, PurePosixPath

from sparkles_core.errors import InputError
from sparkles_core.submit import LocalInput

__all__ = ["check_command_exists", "command_line", "expand_caret_tokens"]

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
