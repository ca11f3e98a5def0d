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

__all__ = ["cli", "main"]

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
@click.option(
    "-c",
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file (default: .sparkles here or in a parent folder).",
)
@click.option(
    "-o",
    "--override",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key (repeatable).",
)
@click.option("--debug", is_flag=True, help="Log detail and show tracebacks.")
@click.pass_context
def cli(
    ctx: click.Context,
    config_file: Path | None,
    overrides: tuple[str, ...],
    debug: bool,
) -> None:
    """Run batch jobs on a fleet of workers, or on this machine by default."""
    logging.basicConfig(level=logging.DEBUG if debug else logging.WARNING)
    state = CliContext(config_file, overrides, debug)
    ctx.obj = state
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
    try:
        code = cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        Console(stderr=True).print("Interrupted.", style="red")
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except (SparklesError, StorageError) as exc:
        if "--debug" in sys.argv:
            raise
        Console(stderr=True).print(
            f"sparkles: error: {exc}",
            style="red",
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        sys.exit(EXIT_ERROR)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    sys.exit(code if isinstance(code, int) else 0)
