"""Raw configuration values, read into typed values with errors naming the key.

A *setting* is one key's text as written, with where it came from (a config
file, a ``-o`` override or an environment variable) so that an error can
point at the line to fix. Every reader returns None for a key that is not
set; a key set to an empty value counts as not set, so ``-o key=`` clears a
value from the file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sparkles_core.errors import ConfigError

__all__ = ["Setting", "Settings"]

_T = TypeVar("_T")

_TRUE = ("y", "yes", "true", "1")
_FALSE = ("n", "no", "false", "0")
_URL = re.compile(r"[a-z][a-z0-9+.-]*://\S+")
_SCHEME_ONLY = re.compile(r"[a-z][a-z0-9+.-]*")


@dataclass(frozen=True)
class Setting:
    """One key's text and where it was set."""

    value: str
    origin: str
    folder: Path


class Settings:
    """Settings by key, with one typed reader per kind of value."""

    def __init__(self, items: Mapping[str, Setting]) -> None:
        self._items = {k: s for k, s in items.items() if s.value.strip()}

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._items))

    def origin(self, key: str) -> str:
        """Return where ``key`` was set."""
        return self._items[key].origin

    def invalid(self, key: str, expected: str) -> ConfigError:
        """Return the error for a value of ``key`` that is not ``expected``."""
        setting = self._items[key]
        return ConfigError(
            f"Bad value for {key!r} in {setting.origin}: {setting.value!r}; "
            f"expected {expected}.",
            key=key,
        )

    def text(self, key: str) -> str | None:
        """Return the value of ``key`` without surrounding blanks."""
        setting = self._items.get(key)
        return None if setting is None else setting.value.strip()

    def integer(self, key: str, minimum: int = 0) -> int | None:
        """Return ``key`` as an integer no smaller than ``minimum``."""
        text = self.text(key)
        if text is None:
            return None
        value = _parse(int, text)
        if value is None or value < minimum:
            raise self.invalid(key, f"a whole number of at least {minimum}")
        return value

    def number(self, key: str) -> float | None:
        """Return ``key`` as a non-negative number."""
        text = self.text(key)
        if text is None:
            return None
        value = _parse(float, text)
        # "nan" and "inf" parse as floats but mean nothing as a duration.
        if value is None or not 0 <= value < math.inf:
            raise self.invalid(key, "a number of seconds, 0 or more")
        return value

    def boolean(self, key: str) -> bool | None:
        """Return ``key`` as a yes/no flag."""
        text = self.text(key)
        if text is None:
            return None
        if text.lower() in _TRUE:
            return True
        if text.lower() in _FALSE:
            return False
        raise self.invalid(key, "y or n (also yes/no, true/false or 1/0)")

    def choice(self, key: str, options: Sequence[str]) -> str | None:
        """Return ``key``, which must be one of ``options``."""
        text = self.text(key)
        if text is None or text in options:
            return text
        raise self.invalid(key, "one of " + ", ".join(options))

    def words(self, key: str) -> tuple[str, ...]:
        """Return ``key`` split on commas and blanks."""
        text = self.text(key) or ""
        return tuple(word for word in re.split(r"[,\s]+", text) if word)

    def url(self, key: str, example: str, bare_scheme: bool = False) -> str | None:
        """Return ``key`` as a URL; with ``bare_scheme``, a lone name too."""
        text = self.text(key)
        if text is None or _URL.fullmatch(text):
            return text
        if bare_scheme and _SCHEME_ONLY.fullmatch(text):
            return text
        raise self.invalid(key, example)

    def path(self, key: str) -> Path | None:
        """Return ``key`` as a path, relative ones taken from where it was set."""
        text = self.text(key)
        if text is None:
            return None
        return self._items[key].folder / Path(text).expanduser()


def _parse(kind: Callable[[str], _T], text: str) -> _T | None:
    """Return ``kind(text)``, or None when the text is not of that kind."""
    try:
        return kind(text)
    except ValueError:
        return None
