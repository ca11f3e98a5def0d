"""Configuration through ``sparkles``: ``-c FILE``, and bad config as one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from sparkles_core.client import Client
from tests.cli.conftest import Invoke, run_sparkles
from tests.cli.test_main import one_error_line

pytestmark = pytest.mark.usefixtures("plain_output")

BOM = "\ufeff"


def test_config_file_given_with_c_is_used(
    home: Path, client: Client, invoke: Invoke
) -> None:
    Path("other.cfg").write_text("[config]\nnodes = 7\n")

    result = invoke("-c", "other.cfg", "sub", "--no-wait", "-n", "c", "true")
    overridden = invoke(
        "-c", "other.cfg", "-o", "nodes=5", "sub", "--no-wait", "-n", "o", "true"
    )

    assert result.exit_code == 0, result.output
    assert overridden.exit_code == 0, overridden.output
    assert (client.job("c").nodes, client.job("o").nodes) == (7, 5)


def test_missing_config_file_given_with_c_is_one_line(home: Path) -> None:
    done = run_sparkles("-c", "nowhere.cfg", "status")

    assert done.returncode == 2
    assert "nowhere.cfg" in one_error_line(done.stderr)


def test_config_file_with_a_bom_is_read(home: Path, invoke: Invoke) -> None:
    Path(".sparkles").write_text(f"{BOM}[config]\nnodes = 3\n", encoding="utf-8")

    result = invoke("sub", "--no-wait", "-n", "bom", "true")

    assert result.exit_code == 0, result.output
    done = run_sparkles("list", "bom", "--fields", "id", "--format", "csv")
    assert done.stdout.splitlines() == ["id", "bom.1"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "nodes = 2\n",
            ", line 1: a setting comes before any section header; add a line "
            "'[config]' above its keys.",
        ),
        (
            "[config]\nnodes = 2\njust words\n",
            ", line 3: cannot read 'just words'; write each setting as key = value.",
        ),
        (
            "[config]\nnodes = 2\nnodes = 3\n",
            ", line 3: key 'nodes' is set twice in [config]; keep one of them.",
        ),
        ("[config]\nnodez = 2\n", "Unknown key 'nodez'"),
        ("[config]\nnodes = many\n", "Bad value for 'nodes'"),
        ("[config]\nproject = my-project\n", "Missing key 'default_url_prefix'"),
    ],
    ids=[
        "no-section-header",
        "not-key-value",
        "repeated-key",
        "unknown-key",
        "malformed-value",
        "missing-cloud-key",
    ],
)
def test_bad_config_file_is_one_line_naming_the_file(
    home: Path, text: str, expected: str
) -> None:
    path = Path(".sparkles").absolute()
    path.write_text(text)

    done = run_sparkles("status")

    assert done.returncode == 2, done.stdout
    line = one_error_line(done.stderr)
    assert expected in line
    assert str(path) in line
