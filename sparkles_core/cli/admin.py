"""Commands about Sparkles itself: ``version``."""

from __future__ import annotations

import click

from sparkles_core.cli.context import CliContext, pass_context

__all__ = ["version"]


@click.command()
@pass_context
def version(state: CliContext) -> None:
    """Print the Sparkles version.

    Example: sparkles version
    """
    from sparkles_core import __version__

    state.say(__version__)
