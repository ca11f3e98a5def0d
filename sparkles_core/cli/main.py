"""The ``sparkles`` command group, its global options and its error handling.

Each command lives in a module of this package named for what it does; the
modules import heavy libraries inside the commands, so ``sparkles --help``
stays quick.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import click
from rich.console import Console

from sparkles_core.cli.context import CliContext
from sparkles_core.cli.options import config_options

__all__ = ["cli", "describe_error", "main"]

EXIT_ERROR = 2


@click.group(
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog="""\b
Examples:
  sparkles sub -n hello echo hello world
  sparkles status
  sparkles watch LAST

Job ids may be given as LAST (the newest job) and, where a command takes a
PATTERN, as shell wildcards (sparkles kill 'sweep-*').""",
)
@config_options
@click.pass_context
def cli(
    ctx: click.Context,
    config_file: Path | None,
    overrides: tuple[str, ...],
    debug: bool,
) -> None:
    """Run batch jobs on a fleet of workers, or on this machine by default."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING)
    # main() passes its own CliContext in, so that once a command fails it
    # knows whether --debug was given on this command line (and not inside
    # a task's command, which also ends up in sys.argv).
    state = ctx.ensure_object(CliContext)
    state.config_file, state.overrides, state.debug = config_file, overrides, debug
    ctx.call_on_close(state.close)


def _register() -> None:
    from sparkles_core.cli import commands

    for command in commands.ALL:
        cli.add_command(command)


def main() -> None:
    """Run the command line; show errors as one line unless --debug."""
    from sparkles_cas.errors import StorageError
    from sparkles_core.errors import SparklesError

    _register()
    state = CliContext()
    try:
        code = cli.main(standalone_mode=False, obj=state)
    except click.exceptions.Abort:
        Console(stderr=True).print("Interrupted.", style="red")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (SparklesError, StorageError, OSError) as exc:
        if state.debug:
            raise
        _print_error(describe_error(exc))
        sys.exit(EXIT_ERROR)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)


def describe_error(exc: Exception) -> str:
    """Return the one line that tells the user what went wrong."""
    from sparkles_core.errors import SparklesError

    if isinstance(exc, SparklesError) or not isinstance(exc, OSError):
        return str(exc)
    if exc.filename is None:
        return f"{exc.strerror or exc}; run again with --debug to see where."
    path = str(exc.filename)
    advice = _OS_ADVICE.get(type(exc), "check the path and try again")
    return f"{exc.strerror}: {path!r}; {advice}."


# What to do about the local file errors a command can meet.
_OS_ADVICE: dict[type[OSError], str] = {
    FileExistsError: "a file is in the way; move it or choose another path",
    NotADirectoryError: "a file stands where a folder is needed; choose another path",
    IsADirectoryError: "a folder stands where a file is needed; choose another path",
    FileNotFoundError: "check that the path exists",
    PermissionError: "check its permissions or choose another path",
}


def _print_error(text: str) -> None:
    Console(stderr=True).print(
        f"sparkles: error: {text}",
        style="red",
        markup=False,
        highlight=False,
        soft_wrap=True,
    )
