"""Keep every task path inside its task's folder.

A download destination, a working folder or an output path is always
relative, uses ``/`` separators and never climbs out with ``..``; this is
checked where a spec is built and again on the worker before any file is
written or read.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

from sparkles_core.errors import InputError

__all__ = ["UnsafePath", "check_relative_path", "safe_join"]


class UnsafePath(InputError, ValueError):
    """A path would leave the task's folder."""

    def __init__(self, message: str, path: str) -> None:
        super().__init__(message)
        self.path = path


def check_relative_path(path: str, what: str = "path") -> str:
    """Return ``path`` normalised, or raise if it is absolute or climbs out."""
    if not path or "\x00" in path:
        raise UnsafePath(f"The {what} {path!r} is empty or invalid.", path)
    pure = PurePosixPath(path)
    if pure.is_absolute() or path.startswith("~"):
        raise UnsafePath(
            f"The {what} {path!r} is absolute; give a path relative to the "
            "task's folder.",
            path,
        )
    if ".." in pure.parts:
        raise UnsafePath(
            f"The {what} {path!r} climbs out of the task's folder with '..'; "
            "give a path inside it.",
            path,
        )
    return str(pure)


def safe_join(root: Path, path: str) -> Path:
    """Return ``root / path``, refusing anything that resolves outside ``root``.

    Symbolic links are followed, so a link planted by an earlier step cannot
    redirect a write outside the folder.
    """
    check_relative_path(path)
    target = root / path
    resolved_root = root.resolve()
    if not target.resolve().is_relative_to(resolved_root):
        raise UnsafePath(f"The path {path!r} resolves outside the task's folder.", path)
    return target
