"""Read the command line given to ``sparkles-run`` (and ``sparkles sub``).

Handles ``^path`` tokens (upload the file, pass its path), the choice between
a shell line and an argument vector, and a early check that the program
exists when the task will run on this machine.
"""

from __future__ import annotations

import shlex
import shutil
from collections.abc import Collection, Sequence
from pathlib import Path, PurePosixPath

from sparkles_core.errors import InputError
from sparkles_core.submit import LocalInput

__all__ = ["check_command_exists", "command_line", "expand_caret_tokens"]

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
    """Replace each ``^path`` token by the path the file will have remotely."""
    words, inputs = [], []
    for word in argv:
        if word.startswith("^") and len(word) > 1:
            local = Path(word[1:])
            dst = _remote_name(word[1:])
            inputs.append(LocalInput(local, dst))
            word = dst
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


def check_command_exists(line: str, uploaded: Collection[str]) -> None:
    """Raise InputError if the line's program is not on this machine's PATH.

    Only meaningful when the task runs here; shell syntax that cannot be
    split, shell words and uploaded files are not checked.
    """
    try:
        words = shlex.split(line)
    except ValueError:
        return
    program = next((w for w in words if "=" not in w), None)
    if program is None or program in _SHELL_WORDS or program in uploaded:
        return
    if "/" in program or shutil.which(program) is not None:
        return
    raise InputError(
        f"Command {program!r} was not found on this machine's PATH; check "
        "the spelling, install it, or upload it with -u."
    )
