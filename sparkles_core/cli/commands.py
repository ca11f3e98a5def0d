"""Every ``sparkles`` subcommand, in the order ``--help`` lists them."""

from __future__ import annotations

import click

from sparkles_core.cli import admin

__all__ = ["ALL"]

ALL: list[click.Command] = [
    admin.version,
]
