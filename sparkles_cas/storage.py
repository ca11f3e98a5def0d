"""Plain object storage: keys under one root URL.

A backend is opened from a URL (``file:///abs/folder``, ``gs://bucket/prefix``)
and then addressed by *keys*: relative, ``/``-separated names under that
root, such as ``cas/3f2a...`` or ``jobs/my-job/1/1/log.txt``. Writes are
atomic: a reader sees the old object, the whole new one, or nothing.
"""

from __future__ import annotations

import abc
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from sparkles_cas.errors import UnsupportedURL

__all__ = ["ObjectInfo", "ObjectStorage", "open_storage", "register_scheme"]


@dataclass(frozen=True)
class ObjectInfo:
    """An object's key and size."""

    key: str
    size: int


class ObjectStorage(abc.ABC):
    """Objects under one root URL."""

    url: str

    def url_of(self, key: str) -> str:
        """Return the full URL of ``key``."""
        return f"{self.url.rstrip('/')}/{key}"

    @abc.abstractmethod
    def put_file(self, key: str, path: Path, if_absent: bool = False) -> bool:
        """Upload the file; with ``if_absent``, keep an existing object.

        Return True if this call wrote the object.
        """

    @abc.abstractmethod
    def put_bytes(self, key: str, data: bytes, if_absent: bool = False) -> bool:
        """Store ``data``; with ``if_absent``, keep an existing object."""

    @abc.abstractmethod
    def get_file(self, key: str, dest: Path) -> None:
        """Download to ``dest`` atomically; raise ObjectNotFound if absent."""

    @abc.abstractmethod
    def get_bytes(self, key: str, offset: int = 0) -> bytes:
        """Return the object's bytes from ``offset`` on; raise if absent."""

    def open_read(self, key: str) -> BinaryIO:
        """Open the object for reading; raise ObjectNotFound if absent.

        The default reads the whole object into memory; backends that can
        stream override it.
        """
        return io.BytesIO(self.get_bytes(key))

    @abc.abstractmethod
    def exists_many(self, keys: Iterable[str]) -> set[str]:
        """Return the subset of ``keys`` that exist, checked in bulk."""

    def exists(self, key: str) -> bool:
        """Return True if the object exists."""
        return key in self.exists_many([key])

    @abc.abstractmethod
    def size(self, key: str) -> int | None:
        """Return the object's size, or None if it does not exist."""

    @abc.abstractmethod
    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield the objects whose key starts with ``prefix``."""

    @abc.abstractmethod
    def delete(self, keys: Iterable[str]) -> None:
        """Delete the objects; missing ones are ignored."""


StorageFactory = Callable[[str], ObjectStorage]
_FACTORIES: dict[str, StorageFactory] = {}


def register_scheme(scheme: str, factory: StorageFactory) -> None:
    """Make ``open_storage`` open ``scheme://`` URLs with ``factory``."""
    _FACTORIES[scheme] = factory


def open_storage(url: str) -> ObjectStorage:
    """Return the storage backend for ``url``."""
    scheme, sep, _ = url.partition("://")
    if not sep or scheme not in _FACTORIES:
        known = ", ".join(f"{name}://" for name in sorted(_FACTORIES))
        raise UnsupportedURL(
            f"No storage backend for {url!r}; use one of: {known}.", url
        )
    return _FACTORIES[scheme](url)
