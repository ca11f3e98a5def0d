"""Object storage in Google Cloud Storage, for ``gs://BUCKET/PREFIX`` URLs.

Each key is an object of the bucket, named with the prefix in front: in
``gs://my-bucket/sparkles`` the key ``cas/3f2a...`` is the object
``sparkles/cas/3f2a...``. Keys follow the rules of file storage, so a key
that one backend accepts the other accepts too.

The Google client is imported when the first ``gs://`` URL is opened, so
``import sparkles_cas`` stays light. It honours ``STORAGE_EMULATOR_HOST``;
against an emulator no credentials are looked for. One client serves every
thread, through a connection pool wide enough for the parallel requests made
here and by the CAS. It acts with the credentials it is given, else with
Application Default Credentials.

An object appears whole when its upload finishes, so writes are atomic
without partial objects. An ``if_absent`` write carries
``ifGenerationMatch=0``: of several uploads of one key exactly one creates
the object. Errors of the client become ``StorageError`` at the boundary
drawn in ``sparkles_cas._gcs_client``.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeVar
from urllib.parse import urlsplit

from sparkles_cas._atomic import discard, partial_path
from sparkles_cas._gcs_client import make_client, translating
from sparkles_cas.errors import (
    InvalidKey,
    UnsupportedURL,
)
from sparkles_cas.filestore import _check_key
from sparkles_cas.storage import ObjectInfo, ObjectStorage

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer
    from google.cloud.storage import (  # type: ignore[import-untyped, unused-ignore]
        Blob,
    )

__all__ = ["GCSStorage"]

logger = logging.getLogger(__name__)

_T = TypeVar("_T")

_MIB = 1 << 20

# Files above the client's single-request limit of 8 MiB go up in a
# resumable upload. Chunks of 16 MiB, not the client's 100 MiB, hold at most
# 128 MiB in memory while the CAS sends eight files at a time. Reads stream
# in chunks of the same size. The API wants a multiple of 256 KiB.
_RESUMABLE_ABOVE = 8 * _MIB
_CHUNK_SIZE = 16 * _MIB

# Existence checks and deletes send this many requests at a time; the
# client's connection pool has room for them (see _gcs_client.CONNECTIONS).
_THREADS = 32

# From this many keys on, existence checks first try a listing: a page of
# names (1,000 at most, the API's limit) costs about one single-key request.
_LIST_FROM = 64
_PAGE_SIZE = 1000

_BINARY = "application/octet-stream"

_BUCKET = re.compile(r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]")


class GCSStorage(ObjectStorage):
    """Objects in a Cloud Storage bucket, under an optional name prefix."""

    def __init__(self, url: str, credentials: Any = None) -> None:
        """Open ``gs://BUCKET/PREFIX``, acting with ``credentials`` if given.

        Without them the client finds Application Default Credentials.
        """
        self.bucket_name, self.prefix = _parse_url(url)
        self.url = f"gs://{self.bucket_name}/{self.prefix}".rstrip("/")
        self._client = make_client(self.url, credentials)
        self._bucket = self._client.bucket(self.bucket_name)

    def put_file(self, key: str, path: Path, if_absent: bool = False) -> bool:
        """Upload the file; with ``if_absent``, keep an existing object."""
        size = os.stat(path).st_size
        large = size > _RESUMABLE_ABOVE
        # Cloud Storage checks the precondition of a resumable upload only
        # when the last chunk arrives (some emulators never do); a metadata
        # request first spares sending a large file that is already there.
        if large and if_absent and self.exists(key):
            return False
        blob = self._blob(key, chunk_size=_CHUNK_SIZE if large else None)
        logger.debug("GCS storage %s: uploading %s (%d bytes)", self.url, key, size)
        return self._write(
            key,
            if_absent,
            lambda **options: blob.upload_from_filename(str(path), **options),
        )

    def put_bytes(self, key: str, data: bytes, if_absent: bool = False) -> bool:
        """Store ``data``; with ``if_absent``, keep an existing object."""
        blob = self._blob(key)
        logger.debug("GCS storage %s: writing %s (%d bytes)", self.url, key, len(data))
        return self._write(
            key, if_absent, lambda **options: blob.upload_from_string(data, **options)
        )

    def get_file(self, key: str, dest: Path) -> None:
        """Download to ``dest`` atomically, creating its folder."""
        blob = self._blob(key)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        temp = partial_path(dest)
        logger.debug("GCS storage %s: downloading %s to %s", self.url, key, dest)
        try:
            with open(temp, "xb") as out, translating("read", self.url_of(key)):
                blob.download_to_file(out)
            os.replace(temp, dest)
        except BaseException:
            discard(temp)
            raise

    def get_bytes(self, key: str, offset: int = 0) -> bytes:
        """Return the object's bytes from ``offset`` on, in one request."""
        if offset < 0:
            raise ValueError(f"Offset must be 0 or more, not {offset!r}.")
        blob = self._blob(key)
        with translating("read", self.url_of(key)):
            return _download(blob, offset, None)

    def open_read(self, key: str) -> BinaryIO:
        """Open the object for reading, streamed in ranged requests."""
        logger.debug("GCS storage %s: streaming %s", self.url, key)
        reader = _ObjectReader(self._blob(key), self.url_of(key))
        return io.BufferedReader(reader)

    def exists_many(self, keys: Iterable[str]) -> set[str]:
        """Return the keys that name an existing object.

        Many keys are settled by listing their span of names, as far as that
        is cheaper than asking for each; the rest are checked in parallel.
        """
        wanted = sorted(set(keys))
        for key in wanted:
            _check_key(key)
        found: set[str] = set()
        unsettled: Sequence[str] = wanted
        if len(wanted) >= _LIST_FROM:
            found, unsettled = self._list_among(wanted)
        there = _in_parallel(self._exists, unsettled)
        found.update(key for key, yes in zip(unsettled, there, strict=True) if yes)
        logger.debug(
            "GCS storage %s: %d of %d keys exist, %d checked one by one",
            self.url,
            len(found),
            len(wanted),
            len(unsettled),
        )
        return found

    def size(self, key: str) -> int | None:
        """Return the object's size in bytes, or None if it does not exist."""
        name = self._name_of(key)
        with translating("check", self.url_of(key)):
            blob = self._bucket.get_blob(name)
        return None if blob is None else int(blob.size)

    def list(self, prefix: str = "") -> Iterator[ObjectInfo]:
        """Yield the objects whose key starts with ``prefix``, in key order."""
        _check_prefix(prefix)
        blobs = self._client.list_blobs(
            self._bucket,
            prefix=self.prefix + prefix,
            fields="items(name,size),nextPageToken",
        )
        start = len(self.prefix)
        with translating("list", self.url_of(prefix)):
            for blob in blobs:
                # Names ending in "/" are folder markers made by the console.
                if not blob.name.endswith("/"):
                    yield ObjectInfo(blob.name[start:], int(blob.size))

    def delete(self, keys: Iterable[str]) -> None:
        """Delete the objects in parallel; missing ones are ignored."""
        unique = sorted(set(keys))
        for key in unique:
            _check_key(key)
        _in_parallel(self._delete, unique)

    def _name_of(self, key: str) -> str:
        """Return the object name for ``key``; raise InvalidKey if it is bad."""
        _check_key(key)
        return self.prefix + key

    def _blob(self, key: str, chunk_size: int | None = None) -> Blob:
        """Return a handle on the object for ``key``, without a request."""
        return self._bucket.blob(self._name_of(key), chunk_size=chunk_size)

    def _write(self, key: str, if_absent: bool, send: Callable[..., object]) -> bool:
        """Call ``send`` with upload options; return False if it lost a race."""
        from google.api_core.exceptions import PreconditionFailed
        from google.cloud.storage.retry import (  # type: ignore[import-untyped, unused-ignore]
            DEFAULT_RETRY,
        )

        # Retry a plain replace too, which the client does not by default:
        # a log or result object has one writer, the attempt that owns it,
        # so sending the same bytes again is harmless. With if_absent, a
        # retry after a lost reply meets its own object and reports False;
        # the object is right all the same.
        options = {"content_type": _BINARY, "retry": DEFAULT_RETRY}
        if if_absent:
            options["if_generation_match"] = 0
        with translating("write", self.url_of(key)):
            try:
                send(**options)
            except PreconditionFailed:
                logger.debug("GCS storage %s: %s already exists", self.url, key)
                return False
        return True

    def _exists(self, key: str) -> bool:
        """Return True if the object for ``key`` exists, in one request."""
        blob = self._blob(key)
        with translating("check", self.url_of(key)):
            return bool(blob.exists())

    def _delete(self, key: str) -> None:
        """Delete the object for ``key`` if it exists."""
        from google.api_core.exceptions import NotFound

        blob = self._blob(key)
        with translating("delete", self.url_of(key)), contextlib.suppress(NotFound):
            blob.delete()

    def _list_among(self, wanted: Sequence[str]) -> tuple[set[str], Sequence[str]]:
        """List the span of ``wanted`` (sorted); return found and unsettled keys.

        Listing stops after as many pages as the single-key requests it saves
        would take rounds; keys past the last listed name stay unsettled.
        """
        first, last = self._name_of(wanted[0]), self._name_of(wanted[-1])
        pages = self._bucket.list_blobs(
            prefix=os.path.commonprefix([first, last]),  # noqa: RUF071 names, not paths
            start_offset=first,
            page_size=_PAGE_SIZE,
            fields="items(name),nextPageToken",
        ).pages
        budget = max(1, len(wanted) // _THREADS)
        listed: set[str] = set()
        reached = ""
        with translating("list", self.url_of(wanted[0])):
            for count, page in enumerate(pages, start=1):
                names = [blob.name for blob in page]
                listed.update(names)
                reached = max(names, default=reached)
                if reached >= last or count >= budget:
                    break
            else:
                reached = last
        found = {key for key in wanted if self.prefix + key in listed}
        unsettled = [key for key in wanted if self.prefix + key > reached]
        return found, unsettled


class _ObjectReader(io.RawIOBase):
    """Read an object in ranged requests, all from the generation first read."""

    def __init__(self, blob: Blob, url: str) -> None:
        super().__init__()
        self._blob = blob
        self._url = url
        self._offset = 0
        self._chunk = memoryview(b"")
        self._ended = False
        # The first request tells at once whether the object exists, and
        # its reply sets the generation that later ranges ask for, so a
        # replaced object fails the read instead of mixing two contents.
        self._fetch()

    def readable(self) -> bool:
        """Return True: this stream reads."""
        return True

    def readinto(self, buffer: WriteableBuffer) -> int:
        """Fill ``buffer`` from the object; return how many bytes it took."""
        if not self._chunk and not self._ended:
            self._fetch()
        count = min(len(self._chunk), memoryview(buffer).nbytes)
        memoryview(buffer).cast("B")[:count] = self._chunk[:count]
        self._chunk = self._chunk[count:]
        return count

    def _fetch(self) -> None:
        """Download the next chunk of the object."""
        end = self._offset + _CHUNK_SIZE - 1
        with translating("read", self._url):
            data = _download(self._blob, self._offset, end)
        self._offset += len(data)
        self._ended = len(data) < _CHUNK_SIZE
        self._chunk = memoryview(data)


def _download(blob: Blob, start: int, end: int | None) -> bytes:
    """Return the blob's bytes from ``start`` to ``end`` (inclusive)."""
    from google.api_core.exceptions import RequestRangeNotSatisfiable

    if start == 0 and end is None:
        whole: bytes = blob.download_as_bytes()
        return whole
    try:
        # Checksums cover whole objects only; the CAS checks its digests.
        part: bytes = blob.download_as_bytes(start=start, end=end, checksum=None)
    except RequestRangeNotSatisfiable:
        # Only an object that exists answers so: the range starts past its end.
        return b""
    return part


def _in_parallel(work: Callable[[str], _T], keys: Sequence[str]) -> list[_T]:
    """Return ``work`` applied to each key, up to ``_THREADS`` at a time."""
    if len(keys) <= 1:
        return [work(key) for key in keys]
    workers = min(_THREADS, len(keys))
    with ThreadPoolExecutor(workers, thread_name_prefix="gcs") as pool:
        return list(pool.map(work, keys))


def _parse_url(url: str) -> tuple[str, str]:
    """Return the bucket of a ``gs://`` URL and its name prefix ("" or "p/")."""
    parts = urlsplit(url)
    prefix = parts.path.strip("/")
    valid = (
        parts.scheme == "gs"
        and _BUCKET.fullmatch(parts.netloc) is not None
        and not parts.query
        and not parts.fragment
    )
    try:
        if prefix:
            _check_key(prefix)
    except InvalidKey:
        valid = False
    if valid:
        return parts.netloc, f"{prefix}/" if prefix else ""
    raise UnsupportedURL(
        f"Cannot use {url!r} as Cloud Storage; write gs://BUCKET or "
        "gs://BUCKET/PREFIX with a lowercase bucket name.",
        url,
    )


def _check_prefix(prefix: str) -> None:
    """Raise InvalidKey unless listing ``prefix`` stays inside the root."""
    if prefix.startswith("/"):
        raise InvalidKey(prefix, "it is absolute")
    folder = prefix.rpartition("/")[0]
    if folder:
        _check_key(folder)
