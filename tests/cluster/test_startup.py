"""The node start-up script, run with stand-ins for the node's commands."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

from sparkles_core.cluster.startup import DiskMount, NodeBoot, startup_script

# Records each call as one line "name arg arg..."; ``docker run`` exits with
# $WORKER_EXIT, as the worker would, and blkid finds no file system.
STAND_IN = """#!/bin/sh
echo "$(basename "$0") $*" >> "$CALLS"
case "$(basename "$0") $1" in
  "docker run") exit "${WORKER_EXIT:-0}" ;;
  "blkid "*) exit 2 ;;
esac
"""
TOOLS = (
    *("docker", "docker-credential-gcr", "gcloud", "systemctl", "curl"),
    *("apt-get", "blkid", "mkfs.ext4", "mount"),
)


def boot(tmp_path: Path, **fields: object) -> NodeBoot:
    values: dict[str, Any] = {
        "worker_image": "us-docker.pkg.dev/p/sparkles/sparkles-worker:1",
        "worker_args": ("consume", "--cluster=c-1", "--node-id=node 1"),
        "work_root": str(tmp_path / "disk"),
        "task_image": "example.org/tools/aligner:2",
    }
    values.update(fields)
    return NodeBoot(**values)


def run_script(
    tmp_path: Path, script: str, os_id: str = "cos", worker_exit: int = 0
) -> list[str]:
    stand_ins = tmp_path / "bin"
    stand_ins.mkdir(exist_ok=True)
    for tool in TOOLS:
        path = stand_ins / tool
        path.write_text(STAND_IN)
        path.chmod(0o755)
    release = tmp_path / "os-release"
    release.write_text(f"ID={os_id}\n")
    calls = tmp_path / "calls.txt"
    env = {
        "PATH": f"{stand_ins}{os.pathsep}{os.environ['PATH']}",
        "CALLS": str(calls),
        "WORKER_EXIT": str(worker_exit),
        "SPARKLES_NODE_STATE": str(tmp_path / "state"),
        "SPARKLES_OS_RELEASE": str(release),
    }
    subprocess.run(["bash", "-c", script], env=env, timeout=120, check=False)
    return calls.read_text().splitlines()


def test_node_runs_the_worker_then_reports_and_powers_off(tmp_path: Path) -> None:
    device, disk = tmp_path / "sdb", tmp_path / "disk"
    device.touch()
    mounts = (DiskMount(str(device), str(disk)),)

    calls = run_script(tmp_path, startup_script(boot(tmp_path, disks=mounts)))

    assert calls[:4] == [
        f"blkid {device}",
        f"mkfs.ext4 -q -F -m 0 -E discard {device}",
        f"mount -o discard,defaults {device} {disk}",
        "docker-credential-gcr configure-docker --registries=us-docker.pkg.dev",
    ]
    assert "docker pull --quiet us-docker.pkg.dev/p/sparkles/sparkles-worker:1" in calls
    assert "docker pull --quiet example.org/tools/aligner:2" in calls
    (run,) = [call for call in calls if call.startswith("docker run")]
    assert f"--volume={disk}:{disk}" in run
    assert "--gpus" not in run
    assert run.endswith(
        "us-docker.pkg.dev/p/sparkles/sparkles-worker:1 consume --cluster=c-1 "
        "--node-id=node 1"
    )
    assert calls[-2].startswith("curl -sf -X PUT --data 0 ")
    assert calls[-2].endswith("/guest-attributes/sparkles/exit-status")
    assert calls[-1] == "systemctl poweroff"
    assert disk.is_dir()


@pytest.mark.parametrize("os_id", ["cos", "debian"])
def test_failed_worker_is_reported_before_the_power_off(
    tmp_path: Path, os_id: str
) -> None:
    calls = run_script(tmp_path, startup_script(boot(tmp_path)), os_id, 3)

    assert calls[-2].startswith("curl -sf -X PUT --data 3 ")
    assert calls[-1] == "systemctl poweroff"


def test_gpu_node_installs_the_toolkit_and_passes_the_gpus(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("nvidia-smi", "nvidia-ctk"):  # the driver is already there
        (bin_dir / tool).write_text(
            '#!/bin/sh\necho "$(basename "$0") $*" >> "$CALLS"\n'
        )
        (bin_dir / tool).chmod(0o755)

    calls = run_script(tmp_path, startup_script(boot(tmp_path, gpus=True)), "debian")

    assert "nvidia-ctk runtime configure --runtime=docker" in calls
    (run,) = [call for call in calls if call.startswith("docker run")]
    assert "--gpus=all" in run
    assert calls[-1] == "systemctl poweroff"
