"""Object storage and the content-addressed store (CAS) of Sparkles.

Importing the package registers the ``file://`` and ``gs://`` schemes, so
``open_storage("file:///abs/folder")`` and ``open_storage("gs://bucket/prefix")``
work at once. The Google client is imported only when a ``gs://`` URL is
opened.
"""

from __future__ import annotations

from sparkles_cas.cas import CAS, FileDigest, UploadReport
from sparkles_cas.errors import (
    DigestMismatch,
    InvalidDigest,
    InvalidKey,
    ObjectNotFound,
    StorageError,
    UnsupportedURL,
)
from sparkles_cas.filestore import FileStorage
from sparkles_cas.gcs import GCSStorage
from sparkles_cas.hashcache import HashCache
from sparkles_cas.hashing import is_digest, sha256_bytes, sha256_file
from sparkles_cas.nodecache import NodeCache
from sparkles_cas.storage import (
    ObjectInfo,
    ObjectStorage,
    open_storage,
    register_scheme,
)

__all__ = [
    "CAS",
    "DigestMismatch",
    "FileDigest",
    "FileStorage",
    "GCSStorage",
    "HashCache",
    "InvalidDigest",
    "InvalidKey",
    "NodeCache",
    "ObjectInfo",
    "ObjectNotFound",
    "ObjectStorage",
    "StorageError",
    "UnsupportedURL",
    "UploadReport",
    "is_digest",
    "open_storage",
    "register_scheme",
    "sha256_bytes",
    "sha256_file",
]

register_scheme("file", FileStorage)
register_scheme("gs", GCSStorage)
