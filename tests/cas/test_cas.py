"""The content-addressed store: dedupe, verified downloads, executable bits."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from sparkles_cas import (
    CAS,
    DigestMismatch,
    InvalidDigest,
    ObjectNotFound,
    sha256_bytes,
)
from tests.cas.conftest import MakeFile
from tests.cas.helpers import CountingStorage, partial_files


def test_upload_sends_each_file_and_reports_it(cas: CAS, make_file: MakeFile) -> None:
    paths = [make_file(f"f{n}.txt", b"content %d" % n) for n in range(5)]

    report = cas.upload(paths)

    assert (report.files, report.uploaded_files) == (5, 5)
    assert report.bytes == report.uploaded_bytes == sum(p.stat().st_size for p in paths)
    for path in paths:
        digest = report.digests[path].digest
        assert cas.storage.get_bytes(cas.key_for(digest)) == path.read_bytes()


def test_second_upload_of_same_files_sends_nothing(
    cas: CAS, make_file: MakeFile
) -> None:
    paths = [make_file(f"f{n}.txt", b"content %d" % n) for n in range(5)]
    cas.upload(paths)

    report = cas.upload(paths)

    assert (report.files, report.uploaded_files, report.uploaded_bytes) == (5, 0, 0)
    assert report.bytes > 0


def test_identical_content_at_two_paths_is_uploaded_once(
    cas: CAS, make_file: MakeFile
) -> None:
    first = make_file("one/data.bin", b"same bytes")
    second = make_file("two/data.bin", b"same bytes")

    report = cas.upload([first, second])

    assert report.files == 2
    assert (report.uploaded_files, report.uploaded_bytes) == (1, 10)
    assert report.digests[first].digest == report.digests[second].digest
    assert [info.key for info in cas.storage.list("cas/")] == [
        cas.key_for(sha256_bytes(b"same bytes"))
    ]


def test_upload_checks_existence_in_one_request(
    storage: CountingStorage, cas: CAS, make_file: MakeFile
) -> None:
    paths = [make_file(f"f{n}.txt", b"%d" % n) for n in range(50)]

    cas.upload(paths)

    assert storage.exists_calls == 1


def test_upload_bytes_round_trip(cas: CAS, tmp_path: Path) -> None:
    digest = cas.upload_bytes(b"spec")

    cas.download(digest, tmp_path / "spec.json")

    assert digest == sha256_bytes(b"spec")
    assert (tmp_path / "spec.json").read_bytes() == b"spec"
    assert cas.upload_bytes(b"spec") == digest


def test_missing_lists_digests_storage_lacks(cas: CAS) -> None:
    present = cas.upload_bytes(b"present")
    absent = sha256_bytes(b"absent")

    assert cas.missing([present, absent]) == {absent}


def test_download_writes_verified_content(
    cas: CAS, make_file: MakeFile, tmp_path: Path
) -> None:
    path = make_file("big.bin", os.urandom(3_000_000))
    digest = cas.upload([path]).digests[path].digest
    dest = tmp_path / "task" / "in" / "big.bin"

    cas.download(digest, dest)

    assert dest.read_bytes() == path.read_bytes()


@pytest.mark.parametrize(
    "corruption",
    [b"tampered!", b"x" * 10, b""],
    ids=["same-size", "longer", "truncated"],
)
def test_corrupt_object_is_refused_and_nothing_is_left_at_dest(
    cas: CAS, storage: CountingStorage, tmp_path: Path, corruption: bytes
) -> None:
    digest = cas.upload_bytes(b"original!")
    storage.put_bytes(cas.key_for(digest), corruption)
    dest = tmp_path / "task" / "input.txt"

    with pytest.raises(DigestMismatch) as caught:
        cas.download(digest, dest)

    assert caught.value.expected == digest
    assert caught.value.actual == sha256_bytes(corruption)
    assert not dest.exists()
    assert partial_files(tmp_path) == []


def test_corrupt_object_leaves_existing_dest_untouched(
    cas: CAS, storage: CountingStorage, tmp_path: Path
) -> None:
    digest = cas.upload_bytes(b"original")
    storage.put_bytes(cas.key_for(digest), b"tampered")
    dest = tmp_path / "input.txt"
    dest.write_bytes(b"previous")

    with pytest.raises(DigestMismatch):
        cas.download(digest, dest)

    assert dest.read_bytes() == b"previous"


def test_download_of_absent_digest_raises_object_not_found(
    cas: CAS, tmp_path: Path
) -> None:
    with pytest.raises(ObjectNotFound):
        cas.download(sha256_bytes(b"never uploaded"), tmp_path / "dest")

    assert not (tmp_path / "dest").exists()
    assert partial_files(tmp_path) == []


@pytest.mark.parametrize("executable", [True, False], ids=["exec", "plain"])
def test_executable_bit_survives_upload_and_download(
    cas: CAS, make_file: MakeFile, tmp_path: Path, executable: bool
) -> None:
    path = make_file("run.sh", b"#!/bin/sh\necho hi\n", executable=executable)

    entry = cas.upload([path]).digests[path]
    dest = tmp_path / "task" / "run.sh"
    cas.download(entry.digest, dest, executable=entry.executable)

    assert entry.executable is executable
    assert os.access(dest, os.X_OK) is executable


def test_digests_are_the_same_without_a_hash_cache(
    storage: CountingStorage, make_file: MakeFile
) -> None:
    paths = [make_file(f"f{n}", b"%d" % n * 1000) for n in range(40)]

    digests = CAS(storage, threads=4).digest_files(paths)

    assert {p: d.digest for p, d in digests.items()} == {
        p: sha256_bytes(p.read_bytes()) for p in paths
    }


def test_missing_input_file_is_reported_by_name(cas: CAS, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"absent\.txt"):
        cas.upload([tmp_path / "absent.txt"])


MALFORMED = [("A" * 64, "uppercase"), ("abc", "short"), ("../" * 21 + "a", "path")]


@pytest.mark.parametrize(
    "digest", [d for d, _ in MALFORMED], ids=[i for _, i in MALFORMED]
)
def test_malformed_digest_is_refused(cas: CAS, tmp_path: Path, digest: str) -> None:
    with pytest.raises(InvalidDigest):
        cas.key_for(digest)
    with pytest.raises(InvalidDigest):
        cas.download(digest, tmp_path / "dest")
    with pytest.raises(InvalidDigest):
        cas.missing([digest])

    assert not (tmp_path / "dest").exists()
