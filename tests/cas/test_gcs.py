"""Cloud Storage: what is particular to ``gs://`` URLs and the Google client.

The contract every backend keeps is tested in ``test_storage.py``, which
also runs against fake-gcs-server.
"""

from __future__ import annotations

import importlib
import logging
import subprocess
import sys
from pathlib import Path

import pytest

import sparkles_cas
from sparkles_cas import (
    GCSStorage,
    ObjectNotFound,
    StorageError,
    UnsupportedURL,
    open_storage,
)
from sparkles_cas import gcs as gcs_module
from tests.emulators.gcs import FakeGCS

MiB = 1 << 20


@pytest.mark.emulator
def test_open_storage_opens_gs_urls(gcs_bucket: str) -> None:
    storage = open_storage(f"gs://{gcs_bucket}/runs/")

    assert isinstance(storage, GCSStorage)
    assert storage.url == f"gs://{gcs_bucket}/runs"
    assert storage.url_of("cas/x") == f"gs://{gcs_bucket}/runs/cas/x"


@pytest.mark.emulator
def test_engine_plugins_open_gs_urls(gcs_bucket: str) -> None:
    from sparkles_core.plugins import open_storage as open_engine_storage

    storage = open_engine_storage(f"gs://{gcs_bucket}")

    assert isinstance(storage, GCSStorage)
    assert storage.url_of("cas/x") == f"gs://{gcs_bucket}/cas/x"


@pytest.mark.emulator
def test_keys_live_under_the_prefix(gcs_bucket: str) -> None:
    outer = GCSStorage(f"gs://{gcs_bucket}")
    inner = GCSStorage(f"gs://{gcs_bucket}/a/b")
    outer.put_bytes("top", b"1")

    inner.put_bytes("cas/k", b"2")

    assert [info.key for info in outer.list()] == ["a/b/cas/k", "top"]
    assert [info.key for info in inner.list()] == ["cas/k"]
    assert inner.exists_many(["top", "cas/k"]) == {"cas/k"}


MALFORMED = [
    ("gs://", "no-bucket"),
    ("gs://My-Bucket/x", "uppercase"),
    ("gs://b/x", "short-bucket"),
    ("gs://my-bucket/x?versions=1", "query"),
    ("gs://my-bucket/a/../b", "parent"),
    ("gs://my-bucket/a//b", "empty-part"),
    ("file:///tmp/x", "other-scheme"),
]


@pytest.mark.parametrize(
    "url", [u for u, _ in MALFORMED], ids=[i for _, i in MALFORMED]
)
def test_malformed_gs_url_is_refused(url: str) -> None:
    with pytest.raises(UnsupportedURL, match="gs://BUCKET/PREFIX") as caught:
        GCSStorage(url)

    assert caught.value.url == url


def test_missing_client_library_names_the_install_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Hide the client even if an earlier test imported it.
    monkeypatch.setitem(sys.modules, "google.cloud.storage", None)
    google_cloud = importlib.import_module("google.cloud")
    monkeypatch.delattr(google_cloud, "storage", raising=False)

    with pytest.raises(UnsupportedURL) as caught:
        GCSStorage("gs://my-bucket/sparkles")

    message = str(caught.value)
    assert "pip install 'snakemake-executor-plugin-sparkles[gcp]'" in message
    assert "gs://my-bucket/sparkles" in message


def test_import_does_not_load_the_google_client() -> None:
    code = (
        "import sys, sparkles_cas\n"
        "print(sorted(m for m in sys.modules if m.startswith('google')))\n"
    )
    root = Path(sparkles_cas.__file__).parents[1]

    output = subprocess.run(
        [sys.executable, "-c", code],
        check=True,
        capture_output=True,
        text=True,
        cwd=root,
    ).stdout

    assert output.strip() == "[]"


@pytest.mark.emulator
def test_missing_bucket_is_one_clear_error_without_request_urls(
    gcs_emulator: FakeGCS, gcs_bucket: str, tmp_path: Path
) -> None:
    storage = GCSStorage("gs://no-such-bucket/sparkles")
    large = tmp_path / "large.bin"
    large.write_bytes(b"x" * (9 * MiB))

    with pytest.raises(StorageError) as small_write:
        storage.put_bytes("cas/k", b"data")
    with pytest.raises(StorageError) as large_write:
        storage.put_file("cas/large", large, if_absent=True)
    with pytest.raises(ObjectNotFound):
        storage.get_bytes("cas/k")

    for caught in (small_write, large_write):
        message = str(caught.value)
        assert message.startswith("Cannot write 'gs://no-such-bucket/sparkles/cas/")
        assert "HTTP 404" in message
        assert "\n" not in message
        assert gcs_emulator.url not in message
        assert "upload" not in message


@pytest.mark.emulator
def test_many_keys_past_the_listing_budget_are_checked_one_by_one(
    gcs_bucket: str,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    storage = GCSStorage(f"gs://{gcs_bucket}/sparkles")
    present = {f"cas/{n:03d}" for n in range(0, 200, 2)}
    for key in present:
        storage.put_bytes(key, b"x")
    # Pages of ten names: the budget of 200 // 32 = 6 pages lists cas/000 to
    # cas/118, which settles the keys up to there and leaves 81 after it.
    monkeypatch.setattr(gcs_module, "_PAGE_SIZE", 10)

    with caplog.at_level(logging.DEBUG, logger="sparkles_cas.gcs"):
        found = storage.exists_many(f"cas/{n:03d}" for n in range(200))

    assert found == present
    assert "100 of 200 keys exist, 81 checked one by one" in caplog.text


@pytest.mark.emulator
def test_stream_reads_one_generation_or_fails(
    gcs_bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gcs_module, "_CHUNK_SIZE", 256 * 1024)
    storage = GCSStorage(f"gs://{gcs_bucket}")
    storage.put_bytes("log", b"a" * MiB)

    with storage.open_read("log") as stream:
        first = stream.read(1000)
        storage.put_bytes("log", b"b" * MiB)
        with pytest.raises(StorageError):
            stream.read()

    assert first == b"a" * 1000
