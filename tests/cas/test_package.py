"""The package surface: exports, scheme registration, no inner dependencies."""

from __future__ import annotations

import inspect
import subprocess
import sys
from pathlib import Path

import sparkles_cas


def test_all_lists_every_public_name() -> None:
    public = {
        name
        for name, value in vars(sparkles_cas).items()
        if not name.startswith("_")
        and not inspect.ismodule(value)
        and name != "annotations"
    }

    assert set(sparkles_cas.__all__) == public


def test_import_registers_file_scheme_and_needs_no_other_package() -> None:
    code = (
        "import sys, sparkles_cas\n"
        "storage = sparkles_cas.open_storage('file:///tmp/x')\n"
        "print(type(storage).__name__)\n"
        "print(sorted(m for m in sys.modules if m.startswith('sparkles_')"
        " and not m.startswith('sparkles_cas')))\n"
    )

    root = Path(sparkles_cas.__file__).parents[1]
    output = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
    ).stdout

    assert output.split("\n")[:2] == ["FileStorage", "[]"]
