"""Write files atomically: fill a hidden partial file, then rename it.

A partial file sits in the folder of the file it will become, named
``.<name>.<random>.sparkles-partial``, so the final rename never crosses a
file system and a reader sees the old file, the whole new one, or nothing.
A crash can leave a partial file behind; it is safe to delete.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

__all__ = [
    "PARTIAL_SUFFIX",
    "discard",
    "is_partial",
    "make_executable",
    "partial_path",
]

PARTIAL_SUFFIX = ".sparkles-partial"

# File names are limited to 255 bytes on common file systems; the random
# token and suffix take 35, so keep a prefix of the name that leaves room.
_NAME_KEPT = 180


def partial_path(dest: Path) -> Path:
    """Return a fresh partial-file path beside ``dest``."""
    token = secrets.token_hex(8)
    return dest.with_name(f".{dest.name[:_NAME_KEPT]}.{token}{PARTIAL_SUFFIX}")


def is_partial(name: str) -> bool:
    """Return True if ``name`` is the name of a partial file."""
    return name.endswith(PARTIAL_SUFFIX)


def discard(path: Path) -> None:
    """Delete ``path`` if it exists."""
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def make_executable(path: Path) -> None:
    """Add execute permission wherever ``path`` grants read permission."""
    mode = stat.S_IMODE(os.stat(path).st_mode)
    os.chmod(path, mode | ((mode & 0o444) >> 2))
