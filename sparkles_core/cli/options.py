"""Options that every Sparkles command line shares: which config, and overrides."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

__all__ = ["CONFIG_FILE", "DEBUG", "OVERRIDE", "config_options"]

F = TypeVar("F", bound=Callable[..., object])

CONFIG_FILE = click.option(
    "-c",
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Config file (default: .sparkles here or in a parent folder).",
)
OVERRIDE = click.option(
    "-o",
    "--override",
    "overrides",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a config key (repeatable).",
)
DEBUG = click.option("--debug", is_flag=True, help="Log detail and show tracebacks.")


def config_options(command: F) -> F:
    """Add -c/--config, -o/--override and --debug to ``command``."""
    return CONFIG_FILE(OVERRIDE(DEBUG(command)))
