"""What every ``sparkles`` command shares: options, the client, the console."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console

if TYPE_CHECKING:
    from sparkles_core.client import Client
    from sparkles_core.config import Config
    from sparkles_core.models import Job

__all__ = ["LAST", "CliContext", "is_wildcard", "pass_context"]

# The job id that names the newest job.
LAST = "LAST"


@dataclass
class CliContext:
    """Global options, and the client and console built from them on demand."""

    config_file: Path | None = None
    overrides: tuple[str, ...] = ()
    debug: bool = False
    console: Console = field(default_factory=Console)
    err: Console = field(default_factory=lambda: Console(stderr=True))
    _client: Client | None = None

    def config(self) -> Config:
        """Return the configuration the global options select."""
        from sparkles_core.config import load_config, parse_override

        overrides = dict(parse_override(text) for text in self.overrides)
        return load_config(self.config_file, overrides)

    @property
    def client(self) -> Client:
        """Return the client, opening the backends on first use."""
        if self._client is None:
            from sparkles_core.client import Client

            self._client = Client(self.config())
        return self._client

    def close(self) -> None:
        """Close the client if one was opened."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def jobs(self, pattern: str, wildcard_may_match_none: bool = False) -> list[Job]:
        """Return the jobs ``pattern`` names: ``LAST``, an id or a wildcard.

        Raise JobNotFound when nothing matches, unless the pattern has
        wildcards and ``wildcard_may_match_none`` is true: commands that
        clean up (``kill '*'``) have nothing to do then, which is no error.
        """
        from sparkles_core.errors import JobNotFound

        jobs = self.client.store.list_jobs("*")
        if pattern == LAST:
            chosen = jobs[-1:]
        else:
            chosen = [job for job in jobs if fnmatch.fnmatchcase(job.id, pattern)]
        if not chosen and not (wildcard_may_match_none and is_wildcard(pattern)):
            raise JobNotFound(pattern)
        return chosen

    def job(self, job_id: str) -> Job:
        """Return the one job ``job_id`` names (``LAST`` allowed)."""
        if job_id == LAST:
            return self.jobs(LAST)[0]
        return self.client.job(job_id)

    def say(self, text: str, style: str | None = None) -> None:
        """Print a line for the user on stdout, without markup surprises."""
        self.console.print(
            text, style=style, markup=False, highlight=False, soft_wrap=True
        )

    def confirm(self, question: str) -> bool:
        """Ask a yes/no question; no answer (stdin closed) counts as no."""
        from rich.prompt import Confirm
        from rich.text import Text

        try:
            return Confirm.ask(Text(question), console=self.console, default=False)
        except EOFError:
            self.say("")
            self.warn("No answer (input is closed); taken as no.")
            return False

    def warn(self, text: str) -> None:
        """Print a line for the user on stderr."""
        self.err.print(
            text, style="yellow", markup=False, highlight=False, soft_wrap=True
        )


def is_wildcard(pattern: str) -> bool:
    """Return True if ``pattern`` has shell wildcards (``*``, ``?``, ``[``)."""
    return any(char in pattern for char in "*?[")


pass_context = click.make_pass_decorator(CliContext)
