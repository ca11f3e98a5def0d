"""Digests of files and bytes."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from sparkles_cas import InvalidDigest, sha256_bytes, sha256_file
from sparkles_cas.hashing import BUFFER_SIZE, check_digest

SIZES = [0, 1, BUFFER_SIZE - 1, BUFFER_SIZE, BUFFER_SIZE + 1, 3 * BUFFER_SIZE + 7]


@pytest.mark.parametrize("size", SIZES, ids=[f"{size}B" for size in SIZES])
def test_file_digest_matches_hashlib(tmp_path: Path, size: int) -> None:
    data = bytes(range(251)) * (size // 251 + 1)
    path = tmp_path / "data"
    path.write_bytes(data[:size])

    assert sha256_file(path) == hashlib.sha256(data[:size]).hexdigest()
    assert sha256_bytes(data[:size]) == hashlib.sha256(data[:size]).hexdigest()


@pytest.mark.skipif(shutil.which("sha256sum") is None, reason="no sha256sum")
def test_file_digest_matches_sha256sum(tmp_path: Path) -> None:
    path = tmp_path / "data"
    path.write_bytes(b"sparkles\n" * 100_000)

    output = subprocess.run(
        ["sha256sum", str(path)], check=True, capture_output=True, text=True
    ).stdout

    assert sha256_file(path) == output.split()[0]


def test_threads_hashing_at_once_get_their_own_digests(tmp_path: Path) -> None:
    paths = []
    for index in range(16):
        path = tmp_path / f"f{index}"
        path.write_bytes(bytes([index]) * (2 * BUFFER_SIZE + index))
        paths.append(path)
    results: dict[Path, str] = {}

    def hash_one(path: Path) -> None:
        results[path] = sha256_file(path)

    threads = [threading.Thread(target=hash_one, args=(p,)) for p in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    for path in paths:
        assert results[path] == hashlib.sha256(path.read_bytes()).hexdigest()


BAD_DIGESTS = [
    ("A" * 64, "uppercase"),
    ("a" * 63, "short"),
    ("a" * 65, "long"),
    ("g" * 64, "not-hex"),
    ("../" + "a" * 61, "path"),
    ("", "empty"),
]


@pytest.mark.parametrize(
    "digest", [d for d, _ in BAD_DIGESTS], ids=[i for _, i in BAD_DIGESTS]
)
def test_malformed_digest_is_refused(digest: str) -> None:
    with pytest.raises(InvalidDigest, match="64 lowercase hex"):
        check_digest(digest)
