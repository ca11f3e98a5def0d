"""File storage: what is particular to keeping objects as local files.

The contract every backend keeps is tested in ``test_storage.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkles_cas import FileStorage, UnsupportedURL, open_storage


def test_open_storage_opens_file_urls(storage_root: Path) -> None:
    storage = open_storage(f"file://{storage_root}")

    assert isinstance(storage, FileStorage)
    assert storage.url_of("cas/x") == f"file://{storage_root}/cas/x"


def test_root_is_created_on_first_write(storage_root: Path) -> None:
    storage = FileStorage(f"file://{storage_root}")
    assert not storage_root.exists()

    storage.put_bytes("a/b/c.txt", b"hello")

    assert (storage_root / "a" / "b" / "c.txt").read_bytes() == b"hello"


@pytest.mark.parametrize(
    "url",
    ["file://relative/folder", "file:relative", "gs://bucket", "file:///x?q=1"],
    ids=["host-part", "no-slashes", "other-scheme", "query"],
)
def test_malformed_file_url_is_refused(url: str) -> None:
    with pytest.raises(UnsupportedURL, match="file:///abs/folder"):
        FileStorage(url)


def test_list_skips_partial_files(storage_root: Path) -> None:
    storage = FileStorage(f"file://{storage_root}")
    storage.put_bytes("cas/a", b"12345")
    (storage_root / "cas" / ".c.0123.sparkles-partial").write_bytes(b"half")

    assert [info.key for info in storage.list()] == ["cas/a"]
