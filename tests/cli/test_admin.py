"""``sparkles version`` and ``sparkles validate`` on the embedded default."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkles_core import __version__
from sparkles_core.client import Client
from tests.cli.conftest import Invoke, run_sparkles

pytestmark = pytest.mark.usefixtures("plain_output")


def verdicts(output: str) -> dict[str, str]:
    """Return the result column of ``validate``'s table, by part."""
    rows = [line.split() for line in output.splitlines()]
    parts = ("store", "storage", "cas", "cluster")
    return {row[0]: row[2] for row in rows if row and row[0] in parts}


def test_version_prints_the_version(home: Path, invoke: Invoke) -> None:
    assert invoke("version").output == f"{__version__}\n"
    done = run_sparkles("version")
    assert (done.returncode, done.stdout) == (0, f"{__version__}\n")


def test_validate_passes_on_the_embedded_default(
    client: Client, invoke: Invoke
) -> None:
    result = invoke("validate")

    assert result.exit_code == 0, result.output
    assert verdicts(result.output) == {"store": "ok", "storage": "ok", "cluster": "ok"}
    assert result.output.splitlines()[-1] == "Every part works."


def test_validate_leaves_nothing_behind(client: Client, invoke: Invoke) -> None:
    assert invoke("validate").exit_code == 0

    assert client.store.list_jobs() == []
    assert client.store.list_nodes() == []
    assert list(client.storage.list("validate/")) == []
    assert list(client.storage.list("jobs/")) == []


def test_validate_piped_is_plain_text(home: Path) -> None:
    done = run_sparkles("validate")

    assert done.returncode == 0, done.stderr
    assert "\x1b[" not in done.stdout
    assert verdicts(done.stdout) == {"store": "ok", "storage": "ok", "cluster": "ok"}


@pytest.mark.parametrize(
    ("variable", "value", "expected", "line"),
    [
        (
            "SPARKLES_STORE",
            "sqlite:///proc/no-such-folder/store.db",
            {"store": "FAILED", "storage": "ok", "cluster": "skipped"},
            "Validation failed: store; skipped: cluster.",
        ),
        (
            "SPARKLES_STORAGE",
            "file:///proc/no-such-folder/storage",
            {"store": "ok", "storage": "FAILED", "cluster": "skipped"},
            "Validation failed: storage; skipped: cluster.",
        ),
        (
            "SPARKLES_CLUSTER",
            "nowhere://cluster",
            {"store": "ok", "storage": "ok", "cluster": "FAILED"},
            "Validation failed: cluster.",
        ),
    ],
    ids=["store", "storage", "cluster"],
)
def test_validate_names_the_part_that_fails(
    home: Path,
    monkeypatch: pytest.MonkeyPatch,
    variable: str,
    value: str,
    expected: dict[str, str],
    line: str,
) -> None:
    monkeypatch.setenv(variable, value)

    done = run_sparkles("validate")

    assert done.returncode == 1, done.stderr
    assert verdicts(done.stdout) == expected
    assert done.stderr == line + "\n"
    assert "Traceback" not in done.stdout + done.stderr


def test_validate_probes_a_moved_cas_as_a_part_of_its_own(home: Path) -> None:
    done = run_sparkles(
        "-o", "cas_url_prefix=file:///proc/no-such-folder/cas", "validate"
    )

    assert done.returncode == 1, done.stderr
    assert verdicts(done.stdout) == {
        "store": "ok",
        "storage": "ok",
        "cas": "FAILED",
        "cluster": "ok",
    }
    assert done.stderr == "Validation failed: cas.\n"
