"""Object storage in a local folder, for ``file:///abs/folder`` URLs.

Each key is a file under the root folder: in ``file:///data/sparkles`` the
key ``cas/3f2a...`` is the file ``/data/sparkles/cas/3f2a...``. The root and
the folders below it are created when the first object is written into them.

A write fills a hidden partial file in the object's folder (see
``sparkles_cas._atomic``) and renames it over the object, so a reader sees
the old object, the whole new one, or nothing. ``list`` skips partial files
and keys may not end with their suffix.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import stat
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

from sparkles_cas._atomic import discard, is_partial, partial_path
from sparkles_cas.errors import (
    InvalidKey,
    ObjectNotFound,
    StorageError,
    UnsupportedURL,
)
from sparkles_cas.storage import ObjectInfo, ObjectStorage

__all__ = ["FileStorage"]

logger = logging.getLogger(__name__)

# Errors that mean "there is no object at that key" when reading.
_ABSENT = (FileNotFoundError, NotADirectoryError, IsADirectoryError)

# Copy in 1 MiB pieces: the default 64 KiB costs more system calls.
_COPY_CHUNK = 1 << 20


class FileStorage(ObjectStorage):
    """Objects kept as files under a local root folder."""

    def __init__(self, url: str) -> None:
        self.root = _root_of(url)
        self.url = f"file://{self.root}"

    def put_file(self, key: str, path: Path, if_absent: bool = False) -> bool:
        """Copy the file in; with ``if_absent``, keep an existing object."""
        dest = self._path_of(key)
        if if_absent and dest.is_file():
            return False
        with open(path, "rb") as source, self._writing(key, dest) as (temp, out):
            shutil.copyfileobj(source, out, _COPY_CHUNK)
        return self._commit(key, temp, dest, if_absent)

    def put_bytes(self, key: str, data: bytes, if_absent: bool = False) -> bool:
        """Store ``data``; with ``if_absent``, keep an existing object."""
        dest = self._path_of(key)
        if if_absent and dest.is_file():
            return False
        with self._writing(key, dest) as (temp, out):
            out.write(data)
        return self._commit(key, temp, dest, if_absent)

    def get_file(self, key: str, dest: Path) -> None:
        """Copy the object to ``dest`` atomically, creating its folder."""
        source = self._path_of(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        temp = partial_path(dest)
        try:
            with self._reading(key):
                shutil.copyfile(source, temp)
            os.replace(temp, dest)
        except BaseException:
            discard(temp)
            raise

    def get_bytes(self, key: str, offset: int = 0) -> bytes:
        """Return the object's bytes from ``offset`` on."""
        if offset < 0:
            raise ValueError(f"Offset must be 0 or more, not {offset!r}.")
        with self.open_read(key) as file:
            file.seek(offset)
            return file.read()

    def open_read(self, key: str) -> BinaryIO:
        """Open the object for reading."""
        path = self._path_of(key)
        with self._reading(key):
            return open(path, "rb")

    def exists_many(self, keys: Iterable[str]) -> set[str]:
        """Return the keys that name an existing object."""
        return {key for key in set(keys) if self._path_of(key).is_file()}

    def size(self, key: str) -> int | None:
        """Return the object's size in bytes, or None if it does not exist."""
        try:
            info = os.stat(self._path_of(key))
        except _ABSENT:
            return None
        return info.st_size if stat.S_ISREG(info.st_mode) else None

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield the objects whose key starts with ``prefix``, in key order."""
        if prefix.startswith("/"):
            raise InvalidKey(prefix, "it is absolute")
        folder, _, start = prefix.rpartition("/")
        base = self._path_of(folder) if folder else self.root
        yield from _walk(base, folder, start)

    def delete(self, keys: Iterable[str]) -> None:
        """Delete the objects; missing ones are ignored."""
        for key in keys:
            path = self._path_of(key)
            try:
                os.unlink(path)
            except _ABSENT:
                continue
            except OSError as exc:
                raise self._failure("delete", key, exc) from exc

    def _path_of(self, key: str) -> Path:
        """Return the file for ``key``; raise InvalidKey if it may escape."""
        _check_key(key)
        return self.root.joinpath(*key.split("/"))

    @contextlib.contextmanager
    def _reading(self, key: str) -> Iterator[None]:
        """Translate file errors met while reading ``key``."""
        try:
            yield
        except _ABSENT as exc:
            raise ObjectNotFound(self.url_of(key)) from exc
        except OSError as exc:
            raise self._failure("read", key, exc) from exc

    @contextlib.contextmanager
    def _writing(self, key: str, dest: Path) -> Iterator[tuple[Path, BinaryIO]]:
        """Open a new partial file for ``dest``; delete it if writing fails."""
        temp = partial_path(dest)
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            with open(temp, "xb") as out:
                yield temp, out
        except OSError as exc:
            discard(temp)
            raise self._failure("write", key, exc) from exc
        except BaseException:
            discard(temp)
            raise

    def _commit(self, key: str, temp: Path, dest: Path, if_absent: bool) -> bool:
        """Move ``temp`` to ``dest``; with ``if_absent``, only if it is free."""
        try:
            if not if_absent:
                os.replace(temp, dest)
                return True
            # A hard link fails if dest exists, so of several processes
            # racing to create one key exactly one wins; a rename would
            # silently replace the winner's object.
            os.link(temp, dest)
            return True
        except FileExistsError:
            logger.debug("File storage %s: %s already exists", self.url, key)
            return False
        except OSError as exc:
            # TODO: file systems without hard links (some FUSE and SMB
            # mounts) fail here with if_absent; they would need an
            # O_EXCL-based fallback that keeps writes atomic.
            raise self._failure("write", key, exc) from exc
        finally:
            discard(temp)

    def _failure(self, action: str, key: str, exc: OSError) -> StorageError:
        """Return the StorageError for a failed file operation on ``key``."""
        url = self.url_of(key)
        return StorageError(f"Cannot {action} {url!r}: {exc.strerror}.", url)


def _root_of(url: str) -> Path:
    """Return the root folder of a ``file:///abs/folder`` URL."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if (
        parts.scheme != "file"
        or parts.netloc not in ("", "localhost")
        or parts.query
        or parts.fragment
        or not path.startswith("/")
    ):
        raise UnsupportedURL(
            f"Cannot use {url!r} as file storage; write an absolute folder "
            "as file:///abs/folder.",
            url,
        )
    return Path(os.path.normpath(path))


def _check_key(key: str) -> None:
    """Raise InvalidKey unless ``key`` stays inside the storage root."""
    if not key:
        raise InvalidKey(key, "it is empty")
    if key.startswith("/"):
        raise InvalidKey(key, "it is absolute")
    if "\0" in key:
        raise InvalidKey(key, "it contains a NUL character")
    parts = key.split("/")
    if ".." in parts:
        raise InvalidKey(key, "it contains '..'")
    if "" in parts or "." in parts:
        raise InvalidKey(key, "it has an empty or '.' part")
    if is_partial(parts[-1]):
        raise InvalidKey(key, "its suffix is reserved for partial files")


def _walk(folder: Path, key: str, start: str) -> Iterator[ObjectInfo]:
    """Yield the objects below ``folder`` (whose key is ``key``) in key order.

    Only entries of ``folder`` itself whose names begin with ``start`` count.
    """
    try:
        with os.scandir(folder) as scan:
            entries = sorted(scan, key=_sort_name)
    except (FileNotFoundError, NotADirectoryError):
        return
    for entry in entries:
        if not entry.name.startswith(start) or is_partial(entry.name):
            continue
        child = f"{key}/{entry.name}" if key else entry.name
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), child, "")
        elif entry.is_file(follow_symlinks=False):
            yield ObjectInfo(child, entry.stat(follow_symlinks=False).st_size)


def _sort_name(entry: os.DirEntry[str]) -> str:
    """Return the name that puts ``entry`` in key order among its siblings."""
    # A folder's keys continue with "/", which sorts after "." and "-".
    return entry.name + "/" if entry.is_dir(follow_symlinks=False) else entry.name
