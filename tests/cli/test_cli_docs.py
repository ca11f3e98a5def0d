"""``docs/cli.md`` stays what ``scripts/cli_docs.py`` generates."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from sparkles_core.cli import commands

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cli_docs.py"


def load_script() -> ModuleType:
    """Import the script as a module."""
    spec = importlib.util.spec_from_file_location("cli_docs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_docs_match_the_commands_help() -> None:
    script = load_script()
    current = script.DOCS.read_text() if script.DOCS.exists() else ""

    assert current == script.render(), (
        "docs/cli.md is out of date; run: python scripts/cli_docs.py"
    )


def test_docs_cover_every_visible_command() -> None:
    text = load_script().render()

    for command in commands.ALL:
        heading = f"## sparkles {command.name}\n"
        assert (heading in text) != command.hidden, command.name
