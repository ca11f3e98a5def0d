"""The node cache: each digest downloaded once per node, copies to tasks."""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
from pathlib import Path

import pytest

from sparkles_cas import CAS, DigestMismatch, InvalidDigest, NodeCache, open_storage
from tests.cas.helpers import CountingStorage, fetch_together


def test_fetch_downloads_each_digest_once(
    node_cache: NodeCache, storage: CountingStorage, tmp_path: Path
) -> None:
    digest = node_cache.cas.upload_bytes(b"reference genome")

    first = node_cache.fetch(digest)
    again = node_cache.fetch(digest)
    for n in range(3):
        node_cache.place(digest, tmp_path / f"task{n}" / "ref.fa")

    assert first == again == node_cache.folder / digest[:2] / digest
    assert first.read_bytes() == b"reference genome"
    assert len(storage.reads) == 1


def test_place_gives_each_task_a_private_copy(
    node_cache: NodeCache, tmp_path: Path
) -> None:
    digest = node_cache.cas.upload_bytes(b"input")
    one, two = tmp_path / "t1" / "in.txt", tmp_path / "t2" / "in.txt"
    node_cache.place(digest, one)
    node_cache.place(digest, two)

    one.write_bytes(b"changed by the task")

    assert two.read_bytes() == b"input"
    assert node_cache.fetch(digest).read_bytes() == b"input"
    assert one.stat().st_ino != node_cache.fetch(digest).stat().st_ino


@pytest.mark.parametrize("executable", [True, False], ids=["exec", "plain"])
def test_place_sets_the_executable_bit(
    node_cache: NodeCache, tmp_path: Path, executable: bool
) -> None:
    digest = node_cache.cas.upload_bytes(b"#!/bin/sh\n")
    dest = tmp_path / "task" / "run.sh"

    node_cache.place(digest, dest, executable=executable)

    assert os.access(dest, os.X_OK) is executable


def test_corrupt_cached_file_is_fetched_again(
    node_cache: NodeCache,
    storage: CountingStorage,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    digest = node_cache.cas.upload_bytes(b"good content")
    cached = node_cache.fetch(digest)
    with open(cached, "ab") as file:
        file.write(b" plus junk")

    with caplog.at_level(logging.WARNING):
        node_cache.place(digest, tmp_path / "task" / "in.txt")

    assert (tmp_path / "task" / "in.txt").read_bytes() == b"good content"
    assert cached.read_bytes() == b"good content"
    assert len(storage.reads) == 2
    assert "downloading it again" in caplog.text


def test_corrupt_storage_object_is_not_cached(
    node_cache: NodeCache, storage: CountingStorage, tmp_path: Path
) -> None:
    digest = node_cache.cas.upload_bytes(b"good content")
    storage.put_bytes(node_cache.cas.key_for(digest), b"bad content!")

    with pytest.raises(DigestMismatch):
        node_cache.place(digest, tmp_path / "task" / "in.txt")

    assert not node_cache.path_for(digest).exists()
    assert not (tmp_path / "task" / "in.txt").exists()


def test_threads_fetching_one_digest_download_it_once(
    tmp_path: Path, storage_url: str
) -> None:
    storage = CountingStorage(open_storage(storage_url), delay_s=0.05)
    cache = NodeCache(tmp_path / "node", CAS(storage))
    digest = cache.cas.upload_bytes(b"shared")

    threads = [threading.Thread(target=cache.fetch, args=(digest,)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert storage.reads == [cache.cas.key_for(digest)]


def test_processes_fetching_the_same_digests_download_each_once(
    tmp_path: Path, storage_url: str
) -> None:
    url = storage_url
    cas = CAS(open_storage(url))
    digests = [cas.upload_bytes(b"input %d" % n) for n in range(3)]
    log = tmp_path / "reads.log"
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(2)
    workers = [
        context.Process(
            target=fetch_together,
            args=(url, tmp_path / "node", digests, barrier, log),
        )
        for _ in range(2)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0

    keys = [line.split()[1] for line in log.read_text().splitlines()]
    assert sorted(keys) == sorted(cas.key_for(digest) for digest in digests)
    for n, digest in enumerate(digests):
        assert (tmp_path / "node" / digest[:2] / digest).read_bytes() == b"input %d" % n


def test_malformed_digest_is_refused_before_touching_the_cache(
    node_cache: NodeCache,
) -> None:
    with pytest.raises(InvalidDigest, match="Invalid digest"):
        node_cache.fetch("../../etc/passwd")

    assert not node_cache.folder.exists()
