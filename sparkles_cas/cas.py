"""The content-addressed store (CAS): file contents named by their digest.

A content is stored once, as the object ``<prefix>/<digest>`` of an
ObjectStorage (``cas/3f2a...`` with the default prefix). An upload asks
storage which digests it already holds in one bulk request and sends only
the others, each once however many paths share it. A download hashes the
bytes as they arrive and refuses content that does not match its digest.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from sparkles_cas import hashing
from sparkles_cas._atomic import discard, make_executable, partial_path
from sparkles_cas.errors import DigestMismatch
from sparkles_cas.hashcache import HashCache
from sparkles_cas.storage import ObjectStorage

__all__ = ["CAS", "FileDigest", "UploadReport"]

logger = logging.getLogger(__name__)

_In = TypeVar("_In")
_Out = TypeVar("_Out")


@dataclass(frozen=True)
class FileDigest:
    """A local file, its digest, size and whether it is executable."""

    path: Path
    digest: str
    size: int
    executable: bool


@dataclass(frozen=True)
class UploadReport:
    """What an upload found and what it had to send."""

    files: int
    bytes: int
    uploaded_files: int
    uploaded_bytes: int
    digests: dict[Path, FileDigest]


class CAS:
    """Files stored in object storage under the sha256 of their content."""

    def __init__(
        self,
        storage: ObjectStorage,
        hash_cache: HashCache | None = None,
        prefix: str = "cas",
        threads: int = 8,
    ) -> None:
        if threads < 1:
            raise ValueError(f"CAS needs at least 1 thread, not {threads!r}.")
        self.storage = storage
        self.hash_cache = hash_cache
        self.prefix = prefix.strip("/")
        self.threads = threads

    def key_for(self, digest: str) -> str:
        """Return the storage key of the content with ``digest``."""
        hashing.check_digest(digest)
        return f"{self.prefix}/{digest}" if self.prefix else digest

    def digest_files(self, paths: Iterable[Path]) -> dict[Path, FileDigest]:
        """Return the digest of each file, hashing only what the cache lacks."""
        read_after_ns = time.time_ns()
        stats = {_as_path(path): os.stat(path) for path in paths}
        cache = self.hash_cache
        known = cache.lookup(stats) if cache is not None else {}
        misses = [path for path in stats if path not in known]
        found = self._map(hashing.sha256_file, misses)
        hashed = dict(zip(misses, found, strict=True))
        if cache is not None and hashed:
            cache.record({p: (stats[p], hashed[p]) for p in hashed}, read_after_ns)
        logger.debug(
            "CAS: %d files digested, %d from the hash cache", len(stats), len(known)
        )
        return {
            path: FileDigest(
                path=path,
                digest=known.get(path) or hashed[path],
                size=info.st_size,
                executable=os.access(path, os.X_OK),
            )
            for path, info in stats.items()
        }

    def upload(self, paths: Iterable[Path]) -> UploadReport:
        """Send the files whose content storage lacks; report what was sent."""
        digests = self.digest_files(paths)
        firsts: dict[str, FileDigest] = {}
        for entry in digests.values():
            firsts.setdefault(entry.digest, entry)
        needed = [firsts[digest] for digest in sorted(self.missing(firsts))]
        written = self._map(self._put, needed)
        sent = [entry for entry, wrote in zip(needed, written, strict=True) if wrote]
        report = UploadReport(
            files=len(digests),
            bytes=sum(entry.size for entry in digests.values()),
            uploaded_files=len(sent),
            uploaded_bytes=sum(entry.size for entry in sent),
            digests=digests,
        )
        logger.info(
            "CAS %s: uploaded %d of %d files (%d of %d bytes)",
            self.storage.url,
            report.uploaded_files,
            report.files,
            report.uploaded_bytes,
            report.bytes,
        )
        return report

    def upload_bytes(self, data: bytes) -> str:
        """Store ``data`` unless storage holds it already; return its digest."""
        digest = hashing.sha256_bytes(data)
        self.storage.put_bytes(self.key_for(digest), data, if_absent=True)
        return digest

    def download(self, digest: str, dest: Path, executable: bool = False) -> None:
        """Write the content with ``digest`` to ``dest``, verified, atomically.

        Raise DigestMismatch, leaving ``dest`` untouched, if the stored bytes
        do not hash to ``digest``.
        """
        key = self.key_for(digest)
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        temp = partial_path(dest)
        try:
            with self.storage.open_read(key) as source, open(temp, "xb") as out:
                actual = hashing.copy_and_hash(source, out)
            if actual != digest:
                raise DigestMismatch(self.storage.url_of(key), digest, actual)
            if executable:
                make_executable(temp)
            os.replace(temp, dest)
        except BaseException:
            discard(temp)
            raise
        logger.debug("CAS: downloaded %s to %s", digest, dest)

    def missing(self, digests: Iterable[str]) -> set[str]:
        """Return the digests whose content storage lacks, checked in bulk."""
        keys = {self.key_for(digest): digest for digest in digests}
        present = self.storage.exists_many(keys)
        return {digest for key, digest in keys.items() if key not in present}

    def _put(self, entry: FileDigest) -> bool:
        """Upload one file under its digest; return True if this call wrote it."""
        return self.storage.put_file(
            self.key_for(entry.digest), entry.path, if_absent=True
        )

    def _map(self, work: Callable[[_In], _Out], items: Sequence[_In]) -> list[_Out]:
        """Return ``work`` applied to each item, in up to ``threads`` threads."""
        workers = min(self.threads, len(items))
        if workers <= 1:
            return [work(item) for item in items]
        pool = ThreadPoolExecutor(workers, thread_name_prefix="cas")
        try:
            return list(pool.map(work, items))
        except BaseException:
            # On an error or Ctrl-C, drop the transfers not yet begun rather
            # than finish them all before the caller hears of it.
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)


def _as_path(path: Path | str) -> Path:
    """Return ``path`` as a Path, reusing it if it is one already."""
    # Building a Path parses it again; with 10,000 inputs that is 10% of a
    # re-scan with a warm hash cache.
    return path if isinstance(path, Path) else Path(path)
