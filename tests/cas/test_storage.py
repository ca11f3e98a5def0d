"""The object storage contract, checked on every backend."""

from __future__ import annotations

import json
import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from sparkles_cas import InvalidKey, ObjectInfo, ObjectNotFound, open_storage
from tests.cas.helpers import (
    CountingStorage,
    leftovers,
    partial_files,
    put_if_absent_in_step,
)

MiB = 1 << 20


def test_bytes_round_trip_with_offset(storage: CountingStorage) -> None:
    assert storage.put_bytes("logs/task.txt", b"0123456789") is True

    assert storage.get_bytes("logs/task.txt") == b"0123456789"
    assert storage.get_bytes("logs/task.txt", offset=4) == b"456789"
    assert storage.get_bytes("logs/task.txt", offset=10) == b""
    assert storage.get_bytes("logs/task.txt", offset=99) == b""
    assert storage.size("logs/task.txt") == 10


def test_empty_object_round_trip(storage: CountingStorage, tmp_path: Path) -> None:
    storage.put_bytes("empty", b"")

    with storage.open_read("empty") as stream:
        assert stream.read() == b""
    storage.get_file("empty", tmp_path / "empty")

    assert storage.get_bytes("empty") == b""
    assert (tmp_path / "empty").read_bytes() == b""
    assert storage.size("empty") == 0


def test_negative_offset_is_refused(storage: CountingStorage) -> None:
    storage.put_bytes("k", b"data")

    with pytest.raises(ValueError, match="-1"):
        storage.get_bytes("k", offset=-1)


def test_file_round_trip(storage: CountingStorage, tmp_path: Path) -> None:
    source = tmp_path / "source.bin"
    source.write_bytes(bytes(range(256)) * 5000)

    assert storage.put_file("data/source.bin", source) is True
    storage.get_file("data/source.bin", tmp_path / "out" / "copy.bin")

    assert (tmp_path / "out" / "copy.bin").read_bytes() == source.read_bytes()


def test_large_file_round_trip_and_stream(
    storage: CountingStorage, tmp_path: Path
) -> None:
    # Above the size at which Cloud Storage uploads resume in chunks, and
    # longer than one streamed read.
    source = tmp_path / "large.bin"
    source.write_bytes(os.urandom(20 * MiB + 123))
    other = tmp_path / "other.bin"
    other.write_bytes(b"\0" * (20 * MiB))

    assert storage.put_file("large", source, if_absent=True) is True
    assert storage.put_file("large", other, if_absent=True) is False
    with storage.open_read("large") as stream:
        streamed = stream.read()

    assert streamed == source.read_bytes()
    assert storage.size("large") == 20 * MiB + 123


def test_put_without_if_absent_replaces(storage: CountingStorage) -> None:
    storage.put_bytes("k", b"old")

    assert storage.put_bytes("k", b"new") is True
    assert storage.get_bytes("k") == b"new"


def test_put_if_absent_keeps_existing_object(
    storage: CountingStorage, tmp_path: Path
) -> None:
    source = tmp_path / "new.txt"
    source.write_bytes(b"new")
    storage.put_bytes("k", b"old")

    assert storage.put_bytes("k", b"new", if_absent=True) is False
    assert storage.put_file("k", source, if_absent=True) is False
    assert storage.get_bytes("k") == b"old"
    assert leftovers(storage) == []


def test_put_if_absent_has_one_winner_across_processes(
    storage: CountingStorage, storage_url: str, tmp_path: Path
) -> None:
    rounds = 20
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = []
    for name in ("a", "b"):
        source = tmp_path / f"{name}.txt"
        source.write_bytes(name.encode() * 4_000_000)
        worker = context.Process(
            target=put_if_absent_in_step,
            args=(storage_url, source, rounds, barrier, tmp_path / name),
        )
        worker.start()
        workers.append(worker)
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0

    won = {name: set(json.loads((tmp_path / name).read_text())) for name in "ab"}
    assert won["a"].isdisjoint(won["b"])
    assert won["a"] | won["b"] == set(range(rounds))
    for name, indexes in won.items():
        for index in indexes:
            content = storage.get_bytes(f"race/{index}")
            assert content == name.encode() * 4_000_000
    assert leftovers(storage) == []


def test_reader_never_sees_a_partial_object(storage: CountingStorage) -> None:
    versions = [bytes([n]) * 4_000_000 for n in range(8)]
    storage.put_bytes("big", versions[0])
    seen: set[bytes] = set()
    done = threading.Event()

    def read_until_done() -> None:
        while not done.is_set():
            data = storage.get_bytes("big")
            seen.add(data if data in versions else b"torn")

    reader = threading.Thread(target=read_until_done)
    reader.start()
    try:
        for data in versions * 3:
            storage.put_bytes("big", data)
    finally:
        done.set()
        reader.join()

    assert b"torn" not in seen


def test_failed_get_leaves_destination_untouched(
    storage: CountingStorage, tmp_path: Path
) -> None:
    dest = tmp_path / "dest.txt"
    dest.write_bytes(b"before")

    with pytest.raises(ObjectNotFound):
        storage.get_file("absent", dest)

    assert dest.read_bytes() == b"before"
    assert partial_files(tmp_path) == []


def test_failed_put_leaves_no_partial_object(
    storage: CountingStorage, tmp_path: Path
) -> None:
    storage.put_bytes("keep", b"x")

    with pytest.raises(FileNotFoundError):
        storage.put_file("k", tmp_path / "no-such-file")

    assert leftovers(storage) == []
    assert [info.key for info in storage.list()] == ["keep"]


def test_absent_object_raises_object_not_found(storage: CountingStorage) -> None:
    storage.put_bytes("folder/file", b"x")

    for key in ("absent", "folder", "folder/file/below"):
        with pytest.raises(ObjectNotFound, match=key):
            storage.get_bytes(key)
        with pytest.raises(ObjectNotFound):
            storage.open_read(key)
        assert storage.size(key) is None


def test_exists_many_returns_present_keys(storage: CountingStorage) -> None:
    for key in ("cas/a", "cas/b", "other"):
        storage.put_bytes(key, b"x")

    found = storage.exists_many(["cas/a", "cas/b", "cas/c", "cas", "other"])

    assert found == {"cas/a", "cas/b", "other"}


def test_exists_many_with_many_keys_finds_exactly_the_present_ones(
    storage: CountingStorage,
) -> None:
    present = {f"cas/{n:03d}" for n in range(0, 150, 3)}
    for key in [*present, "cas/0999-outside-the-asked-keys", "cat", "ca"]:
        storage.put_bytes(key, b"x")
    asked = [f"cas/{n:03d}" for n in range(150)] + ["cas", "other/1"]

    assert storage.exists_many(asked) == present


def test_list_yields_keys_under_prefix_in_order(storage: CountingStorage) -> None:
    for key in ("cas/b", "cas/a", "cas.txt", "cassette", "jobs/1/log", "z"):
        storage.put_bytes(key, b"12345")

    assert [info.key for info in storage.list("cas/")] == ["cas/a", "cas/b"]
    assert [info.key for info in storage.list("cas")] == [
        "cas.txt",
        "cas/a",
        "cas/b",
        "cassette",
    ]
    assert list(storage.list("jobs/1/")) == [ObjectInfo("jobs/1/log", 5)]
    assert len(list(storage.list())) == 6
    assert list(storage.list("nothing/here/")) == []


def test_delete_removes_objects_and_ignores_missing(storage: CountingStorage) -> None:
    storage.put_bytes("a", b"1")
    storage.put_bytes("b", b"2")

    storage.delete(["a", "missing", "also/missing"])

    assert storage.exists_many(["a", "b"]) == {"b"}


def test_delete_many_objects(storage: CountingStorage) -> None:
    keys = [f"jobs/1/{n}" for n in range(40)]
    for key in keys:
        storage.put_bytes(key, b"x")
    storage.put_bytes("jobs/2/keep", b"x")

    storage.delete(keys)

    assert [info.key for info in storage.list("jobs/")] == ["jobs/2/keep"]


def test_reopened_storage_sees_the_same_objects(
    storage: CountingStorage, storage_url: str
) -> None:
    storage.put_bytes("cas/k", b"kept")

    again = open_storage(storage_url)

    assert again.get_bytes("cas/k") == b"kept"
    assert again.url_of("cas/k") == storage.url_of("cas/k")


BAD_KEYS = [
    ("", "empty"),
    ("/etc/passwd", "absolute"),
    ("../outside", "parent"),
    ("cas/../../outside", "parent-inside"),
    ("cas/..", "parent-last"),
    ("a//b", "empty-part"),
    ("./a", "dot"),
    ("cas/x.sparkles-partial", "partial-suffix"),
]


@pytest.mark.parametrize("key", [k for k, _ in BAD_KEYS], ids=[i for _, i in BAD_KEYS])
def test_key_that_may_escape_the_root_is_refused(
    storage: CountingStorage, tmp_path: Path, key: str
) -> None:
    source = tmp_path / "f"
    source.write_bytes(b"x")

    with pytest.raises(InvalidKey):
        storage.put_bytes(key, b"x")
    with pytest.raises(InvalidKey):
        storage.put_file(key, source)
    with pytest.raises(InvalidKey):
        storage.get_bytes(key)
    with pytest.raises(InvalidKey):
        storage.get_file(key, tmp_path / "dest")
    with pytest.raises(InvalidKey):
        storage.exists_many(["ok", key])
    with pytest.raises(InvalidKey):
        storage.delete([key])

    assert not (tmp_path / "outside").exists()
    assert not (tmp_path / "dest").exists()
    assert list(storage.list()) == []


@pytest.mark.parametrize("prefix", ["../", "/etc/", "a/../../"], ids=str)
def test_list_refuses_prefix_outside_root(
    storage: CountingStorage, prefix: str
) -> None:
    with pytest.raises(InvalidKey):
        list(storage.list(prefix))
