"""Write docs/cli.md: the ``--help`` text of ``sparkles`` and each subcommand.

Run ``python scripts/cli_docs.py`` after changing a command's options or help
text; ``--check`` exits 1 instead of writing when the file is out of date.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "cli.md"
# A fixed width keeps the text the same whatever terminal runs the script.
WIDTH = 80

HEADER = """\
# The `sparkles` command

This page is generated from the commands' `--help` text by
`scripts/cli_docs.py`; edit the help text, then run the script.
"""


def render() -> str:
    """Return the markdown for ``sparkles`` and every visible subcommand."""
    from sparkles_core.cli import commands
    from sparkles_core.cli.main import cli

    for command in commands.ALL:
        cli.add_command(command)
    root = click.Context(
        cli, info_name="sparkles", terminal_width=WIDTH, **cli.context_settings
    )
    parts = [HEADER, _section("sparkles", cli.get_help(root))]
    for command in commands.ALL:
        if command.hidden or command.name is None:
            continue
        context = click.Context(
            command, info_name=command.name, parent=root, terminal_width=WIDTH
        )
        parts.append(_section(f"sparkles {command.name}", command.get_help(context)))
    return "\n".join(parts)


def _section(title: str, help_text: str) -> str:
    return f"## {title}\n\n```text\n{help_text.rstrip()}\n```\n"


def main(argv: list[str]) -> int:
    """Write the docs, or with ``--check`` report whether they are current."""
    text = render()
    if "--check" in argv:
        current = DOCS.read_text() if DOCS.exists() else ""
        if current != text:
            print(f"{DOCS} is out of date; run: python scripts/cli_docs.py")
            return 1
        return 0
    DOCS.parent.mkdir(parents=True, exist_ok=True)
    DOCS.write_text(text)
    print(f"wrote {DOCS}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
