"""``sparkles show --out`` and ``sparkles list --params`` on the sample job."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.conftest import Invoke, Sample

pytestmark = pytest.mark.usefixtures("plain_output")


def test_show_out_writes_the_table_as_csv(
    sample: Sample, invoke: Invoke, tmp_path: Path
) -> None:
    out = tmp_path / "tasks.csv"

    result = invoke("show", "sample", "-e", "--out", str(out))

    assert result.output == f"Wrote 5 tasks of job sample to {out}.\n"
    assert out.read_text().splitlines() == [
        "sparkles_task,sparkles_status,sparkles_exit,name,size",
        "sample.1,ok,0,a,1",
        "sample.2,nonzero,3,b,2",
        "sample.3,failed,,c,3",
        "sample.4,nonzero,signal 9,d,4",
        "sample.5,pending,,e,5",
    ]
    assert list(tmp_path.glob(".*.partial")) == []


def test_show_params_out_is_a_table_sub_takes_back(
    sample: Sample, invoke: Invoke, tmp_path: Path
) -> None:
    out = tmp_path / "redo.csv"

    result = invoke("show", "sample", "--params", "-i", "--out", str(out))

    assert result.exit_code == 0, result.output
    assert out.read_text() == "name,size\ne,5\n"


NONZERO = ["--filter", "status=complete", "--filter", "exit_code!=0"]


def test_list_params_gives_only_the_parameters(sample: Sample, invoke: Invoke) -> None:
    result = invoke("list", "sample", *NONZERO, "--params")

    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [
        {"name": "b", "size": "2"},
        {"name": "d", "size": "4"},
    ]


def test_list_params_as_csv_is_a_table_sub_takes_back(
    sample: Sample, invoke: Invoke
) -> None:
    result = invoke("list", "sample", *NONZERO, "--params", "--format", "csv")

    assert (result.exit_code, result.output) == (0, "name,size\nb,2\nd,4\n")


def test_list_params_with_fields_is_a_usage_error(
    sample: Sample, invoke: Invoke
) -> None:
    result = invoke("list", "sample", "--params", "--fields", "id")

    assert result.exit_code == 2
    assert "Give --params or --fields, not both." in result.output
