"""Errors raised by object storage and the content-addressed store.

This package depends on nothing else of Sparkles, so its tree has its own
root; front ends catch it beside ``sparkles_core.errors.SparklesError``::

    StorageError             a storage request failed
    ├── ObjectNotFound       no object under that key
    ├── DigestMismatch       downloaded bytes do not hash to their digest
    ├── InvalidDigest        a digest is not 64 lowercase hex characters
    ├── InvalidKey           a key is empty, absolute, or climbs out with ..
    └── UnsupportedURL       no storage backend for that URL
"""

from __future__ import annotations

__all__ = [
    "DigestMismatch",
    "InvalidDigest",
    "InvalidKey",
    "ObjectNotFound",
    "StorageError",
    "UnsupportedURL",
]


class StorageError(Exception):
    """A request to object storage failed."""

    def __init__(self, message: str, url: str | None = None) -> None:
        super().__init__(message)
        self.url = url


class ObjectNotFound(StorageError):
    """The object does not exist."""

    def __init__(self, url: str) -> None:
        super().__init__(f"No object at {url!r}.", url)


class DigestMismatch(StorageError):
    """A CAS object's content does not match its digest."""

    def __init__(self, url: str, expected: str, actual: str) -> None:
        super().__init__(
            f"Object {url!r} is corrupt: its content hashes to {actual}, "
            f"not {expected}; delete it and submit again to re-upload it.",
            url,
        )
        self.expected = expected
        self.actual = actual


class InvalidDigest(StorageError):
    """A string given as a digest is not a sha256 in lowercase hex."""

    def __init__(self, digest: str) -> None:
        super().__init__(
            f"Invalid digest {digest!r}: expected the sha256 of the content "
            "as 64 lowercase hex characters."
        )
        self.digest = digest


class InvalidKey(StorageError):
    """A key could name something outside the storage root."""

    def __init__(self, key: str, reason: str) -> None:
        super().__init__(
            f"Invalid storage key {key!r}: {reason}; use a relative, "
            "'/'-separated name such as 'cas/<digest>'."
        )
        self.key = key
        self.reason = reason


class UnsupportedURL(StorageError):
    """No storage backend handles the URL."""
