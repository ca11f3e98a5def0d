"""The fake Compute API's instances: a resource and a real worker process.

An instance runs ``python -m sparkles_worker`` with the arguments of its
``sparkles-worker-args`` metadata item, its folders moved under the fake's
root. When the worker exits, the instance powers off (TERMINATED) and keeps
the exit status as the guest attribute ``sparkles/exit-status``, as the
start-up script leaves it on a real node.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

__all__ = ["FakeNode"]

EXIT_STATUS = "sparkles/exit-status"


@dataclass
class FakeNode:
    """One instance of the fake."""

    resource: dict[str, Any]
    proc: subprocess.Popen[bytes] | None = None
    attributes: dict[str, str] = field(default_factory=dict)

    def boot(self, root: Path) -> None:
        """Start the worker the instance's metadata describes."""
        items = {i["key"]: i["value"] for i in self.resource["metadata"]["items"]}
        folder = root / self.resource["name"]
        folder.mkdir(parents=True)
        moved = {"--work-dir": folder / "work", "--cache-dir": folder / "cache"}
        argv = []
        for arg in json.loads(items["sparkles-worker-args"]):
            flag = arg.split("=", 1)[0]
            argv.append(f"{flag}={moved[flag]}" if flag in moved else arg)
        with (folder / "worker.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "sparkles_worker", *argv],
                cwd=folder,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def sync(self) -> None:
        """Power the instance off if its worker exited, as the script does."""
        code = None if self.proc is None else self.proc.poll()
        if code is None or self.resource["status"] not in ("RUNNING", "STAGING"):
            return
        self.resource["status"] = "TERMINATED"
        self.attributes[EXIT_STATUS] = str(code if code >= 0 else 128 - code)

    def stop(self, grace_s: float) -> None:
        """Stop the worker: SIGTERM and ``grace_s`` seconds, then the power."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        if grace_s > 0:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(grace_s)
        if proc.poll() is None:
            _cut_power(proc.pid)
        proc.wait()
        self.attributes.setdefault(EXIT_STATUS, str(proc.returncode))


def _cut_power(pid: int) -> None:
    """SIGKILL the worker and everything it started."""
    try:
        parent = psutil.Process(pid)
        family = [*parent.children(recursive=True), parent]
    except psutil.NoSuchProcess:
        return
    # Freeze them all first: a worker that outlived its command by a moment
    # would report the command killed, which a power cut never lets it do.
    for action in (psutil.Process.suspend, psutil.Process.kill):
        for process in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                action(process)
