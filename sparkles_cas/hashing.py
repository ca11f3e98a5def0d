"""SHA-256 digests, the names of objects in the content-addressed store.

A digest is the sha256 of an object's content written as 64 lowercase hex
characters. Files are read with one reusable buffer per thread, so hashing
runs at the speed of the sha256 code itself (OpenSSL's, which uses the CPU's
SHA instructions where present) rather than at the speed of Python.
"""

from __future__ import annotations

import hashlib
import re
import threading
from pathlib import Path
from typing import BinaryIO

from sparkles_cas.errors import InvalidDigest

__all__ = [
    "check_digest",
    "copy_and_hash",
    "is_digest",
    "sha256_bytes",
    "sha256_file",
]

# 1 MiB reads: past this size the time per read is all hashing; a larger
# buffer only costs memory in each hashing thread.
BUFFER_SIZE = 1 << 20

_DIGEST = re.compile(r"[0-9a-f]{64}")


class _ReadBuffer(threading.local):
    """One read buffer per thread, allocated on the thread's first use."""

    def __init__(self) -> None:
        self.data = bytearray(BUFFER_SIZE)
        self.view = memoryview(self.data)


_buffer = _ReadBuffer()


def is_digest(value: str) -> bool:
    """Return True if ``value`` is a well-formed digest."""
    return _DIGEST.fullmatch(value) is not None


def check_digest(value: str) -> str:
    """Return ``value`` if it is a well-formed digest; raise InvalidDigest."""
    if not isinstance(value, str) or not is_digest(value):
        raise InvalidDigest(value)
    return value


def sha256_bytes(data: bytes) -> str:
    """Return the digest of ``data``."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path | str) -> str:
    """Return the digest of the file's content."""
    buffer, view = _buffer.data, _buffer.view
    sha = hashlib.sha256()
    with open(path, "rb", buffering=0) as file:
        while count := file.readinto(buffer):
            sha.update(view[:count])
    return sha.hexdigest()


def copy_and_hash(source: BinaryIO, dest: BinaryIO) -> str:
    """Copy ``source`` to ``dest`` and return the digest of what was copied."""
    sha = hashlib.sha256()
    while chunk := source.read(BUFFER_SIZE):
        sha.update(chunk)
        dest.write(chunk)
    return sha.hexdigest()
