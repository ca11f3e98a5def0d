"""The worker image recipe, checked without building it (no Docker here)."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from packaging.requirements import Requirement
from packaging.version import Version

import sparkles_worker

ROOT = Path(sparkles_worker.__file__).resolve().parent.parent
DOCKERFILE = ROOT / "sparkles_worker" / "Dockerfile"


def instructions() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [line.strip() for line in text.splitlines()]
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1])
        for line in lines
        if line and not line.startswith("#")
    ]


def test_dockerfile_installs_the_distribution_with_the_gcp_extra() -> None:
    steps = instructions()

    assert steps[0] == ("FROM", "python:3.11-slim")
    runs = [arg for op, arg in steps if op == "RUN"]
    assert any('pip install ".[gcp]"' in arg for arg in runs)
    assert ("ENTRYPOINT", '["sparkles-worker"]') in steps


def test_dockerfile_brings_the_docker_client_for_task_images() -> None:
    copies = [arg for op, arg in instructions() if op == "COPY"]

    assert any(arg.endswith("/usr/local/bin/docker") for arg in copies)


def test_dockerfile_copies_only_what_exists_in_the_checkout() -> None:
    sources = [
        source
        for op, arg in instructions()
        if op == "COPY" and not arg.startswith("--from")
        for source in arg.split()[:-1]
    ]

    assert "pyproject.toml" in sources
    assert [s for s in sources if not (ROOT / s).exists()] == []


def test_dockerfile_pins_snakemake_to_the_major_version_the_plugin_supports() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    tested = [
        Requirement(text)
        for text in project["optional-dependencies"]["test"]
        if Requirement(text).name == "snakemake"
    ]
    (low,) = [spec for req in tested for spec in req.specifier if spec.operator == ">="]
    major = Version(low.version).major
    args = dict(arg.split("=", 1) for op, arg in instructions() if op == "ARG")
    pinned = Requirement(args["SNAKEMAKE_SPEC"].strip('"'))

    assert pinned.name == "snakemake"
    assert pinned.specifier.contains(f"{major}.0") and pinned.specifier.contains(
        f"{major}.99"
    )
    assert not pinned.specifier.contains(f"{major + 1}.0")
    assert not pinned.specifier.contains(f"{major - 1}.99")
    runs = [arg for op, arg in instructions() if op == "RUN"]
    assert any("${SNAKEMAKE_SPEC}" in arg for arg in runs)
