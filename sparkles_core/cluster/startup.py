"""The scripts a Compute Engine node runs when it boots and when it stops.

A node boots Container-Optimized OS (Docker built in), or Debian when it has
GPUs, because the NVIDIA container toolkit that ``docker run --gpus`` needs
installs there. The start-up script, run as root by the guest agent:

1. formats (first boot only) and mounts the data disks;
2. on Debian, installs Docker; with GPUs, the NVIDIA driver (whose installer
   reboots the node; the script runs again after each boot, and gives up
   after a few tries) and the container toolkit;
3. lets Docker pull from the Google registries the images live in, and
   pulls the worker image and the job's image, so the worker's own Docker
   client needs no credentials;
4. runs ``sparkles-worker consume`` in the worker image, as root, with the
   node's Docker socket and the work folder mounted at the same path, so
   the tasks it starts in their own containers see the same paths;
5. when the worker exits (idle for its linger time, or stopped), records its
   exit status as the guest attribute ``sparkles/exit-status`` and powers
   the node off, so the provisioner sees it stopped and deletes it.

The shutdown script (a spot preemption, or a delete) stops the worker
container with time to hand its task back. Everything the scripts print goes
to the node's serial console and Cloud Logging.

On the node, under the work folder (``work_root_dir``, the first data disk
by default)::

    sparkles/work/     the worker's task folder
    sparkles/cache/    the node-level CAS cache
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable
from dataclasses import dataclass

from sparkles_core import __version__
from sparkles_core.cluster.base import WorkerLaunch

__all__ = [
    "EXIT_STATUS_ATTRIBUTE",
    "WORKER_CONTAINER",
    "DiskMount",
    "NodeBoot",
    "default_worker_image",
    "google_registries",
    "node_worker_args",
    "shutdown_script",
    "startup_script",
]

WORKER_CONTAINER = "sparkles-worker"
EXIT_STATUS_ATTRIBUTE = "sparkles/exit-status"
# Spot nodes get 30 s between the preemption notice and the power cut; the
# worker needs a few of them to stop its command and hand the task back.
STOP_TIMEOUT_S = 25
# Google's installer for the NVIDIA driver on Compute Engine images.
GPU_INSTALLER_URL = (
    "https://storage.googleapis.com/compute-gpu-installation-us/"
    "installer/latest/cuda_installer.pyz"
)


@dataclass(frozen=True)
class DiskMount:
    """A data disk: the device the node sees and where to mount it."""

    device: str
    path: str


@dataclass(frozen=True)
class NodeBoot:
    """What a node's start-up script needs to know."""

    worker_image: str
    worker_args: tuple[str, ...]
    work_root: str
    task_image: str | None = None
    disks: tuple[DiskMount, ...] = ()
    gpus: bool = False


def default_worker_image(project: str, region: str) -> str:
    """Return the worker image that ``sparkles setup`` builds for a project."""
    return f"{region}-docker.pkg.dev/{project}/sparkles/sparkles-worker:{__version__}"


def node_worker_args(launch: WorkerLaunch, node_id: str, work_root: str) -> list[str]:
    """Return the ``sparkles-worker`` arguments a node runs."""
    root = work_root.rstrip("/")
    return [
        *launch.worker_args(node_id),
        f"--work-dir={root}/sparkles/work",
        f"--cache-dir={root}/sparkles/cache",
        "--container-runtime=docker",
    ]


def google_registries(images: Iterable[str | None]) -> list[str]:
    """Return the Google registry hosts that the images are pulled from."""
    hosts = set()
    for image in images:
        host = (image or "").split("/", 1)[0]
        if host.endswith(("gcr.io", "-docker.pkg.dev")):
            hosts.add(host)
    return sorted(hosts)


def startup_script(boot: NodeBoot) -> str:
    """Return the node's start-up script."""
    registries = google_registries([boot.worker_image, boot.task_image])
    disks = [f"{disk.device}={disk.path}" for disk in boot.disks]
    header = [
        "#!/bin/bash",
        "# Sparkles node start-up: mount the disks, run the worker in its",
        "# container, power the node off when the worker exits.",
        f"WORKER_IMAGE={shlex.quote(boot.worker_image)}",
        f"TASK_IMAGE={shlex.quote(boot.task_image or '')}",
        f"WORK_ROOT={shlex.quote(boot.work_root)}",
        f"GPUS={int(boot.gpus)}",
        f"REGISTRIES={shlex.quote(','.join(registries))}",
        f"DISKS=({_words(disks)})",
        f"WORKER_ARGS=({_words(boot.worker_args)})",
        f"WORKER_CONTAINER={WORKER_CONTAINER}",
        f"STOP_TIMEOUT={STOP_TIMEOUT_S}",
        f"GPU_INSTALLER_URL={shlex.quote(GPU_INSTALLER_URL)}",
        f"EXIT_STATUS_ATTRIBUTE={EXIT_STATUS_ATTRIBUTE}",
    ]
    return "\n".join(header) + "\n" + _STARTUP_BODY


def shutdown_script() -> str:
    """Return the node's shutdown script."""
    return (
        "#!/bin/bash\n"
        "# Sparkles node shutdown: give the worker its SIGTERM and the time to\n"
        "# hand its task back before the node goes.\n"
        f"docker stop --time={STOP_TIMEOUT_S} {WORKER_CONTAINER} >/dev/null 2>&1"
        " || true\n"
    )


def _words(values: Iterable[str]) -> str:
    return " ".join(shlex.quote(value) for value in values)


_STARTUP_BODY = r"""
set -uo pipefail
# Container-Optimized OS keeps / read-only; Docker's client needs a home.
# Both paths can be moved to try the script out off a node.
STATE=${SPARKLES_NODE_STATE:-/var/lib/sparkles}
export HOME=$STATE
REBOOT_MARK=$STATE/rebooting
DRIVER_TRIES=$STATE/driver-tries
mkdir -p "$STATE"
rm -f "$REBOOT_MARK"
. "${SPARKLES_OS_RELEASE:-/etc/os-release}"

log() { echo "sparkles-startup: $*" >&2; }

report() {
  local url=http://metadata.google.internal/computeMetadata/v1/instance
  curl -sf -X PUT --data "$1" -H 'Metadata-Flavor: Google' \
    "$url/guest-attributes/$EXIT_STATUS_ATTRIBUTE" \
    || log "could not record exit status $1"
}

finish() {
  local code=$?
  if [[ -e $REBOOT_MARK ]]; then
    log "rebooting to finish the GPU driver install"
    return
  fi
  report "$code"
  log "finished with status $code; powering off"
  systemctl poweroff
}

mount_disk() {
  local device=$1 target=$2
  for _ in $(seq 120); do [[ -e $device ]] && break; sleep 1; done
  blkid "$device" >/dev/null || mkfs.ext4 -q -F -m 0 -E discard "$device"
  mkdir -p "$target"
  grep -qs " $target " /proc/mounts || mount -o discard,defaults "$device" "$target"
  chmod a+w "$target"
}

install_docker() {
  command -v docker >/dev/null && return
  apt-get update -q && apt-get install -q -y docker.io
  systemctl enable --now docker
}

install_gpu_driver() {
  nvidia-smi >/dev/null 2>&1 && return
  if [[ $ID == cos ]]; then
    log "GPU nodes need a Debian image"
    return 1
  fi
  local tries
  tries=$(( $(cat "$DRIVER_TRIES" 2>/dev/null || echo 0) + 1 ))
  echo "$tries" > "$DRIVER_TRIES"
  if (( tries > 4 )); then
    log "the NVIDIA driver did not install after $((tries - 1)) tries"
    return 1
  fi
  curl -fsSL -o "$STATE/cuda_installer.pyz" "$GPU_INSTALLER_URL"
  touch "$REBOOT_MARK"
  python3 "$STATE/cuda_installer.pyz" install_driver
  if nvidia-smi >/dev/null 2>&1; then
    rm -f "$REBOOT_MARK"
    return
  fi
  systemctl reboot
  exit 0
}

install_container_toolkit() {
  if ! command -v nvidia-ctk >/dev/null; then
    local keyring=/usr/share/keyrings/nvidia-container-toolkit.gpg
    local repo=https://nvidia.github.io/libnvidia-container
    curl -fsSL "$repo/gpgkey" | gpg --dearmor --yes -o "$keyring"
    curl -fsSL "$repo/stable/deb/nvidia-container-toolkit.list" \
      | sed "s#deb https://#deb [signed-by=$keyring] https://#" \
      > /etc/apt/sources.list.d/nvidia-container-toolkit.list
    apt-get update -q && apt-get install -q -y nvidia-container-toolkit
  fi
  nvidia-ctk runtime configure --runtime=docker
  systemctl restart docker
}

login_registries() {
  [[ -n $REGISTRIES ]] || return 0
  if [[ $ID == cos ]]; then
    docker-credential-gcr configure-docker --registries="$REGISTRIES"
  elif command -v gcloud >/dev/null; then
    gcloud auth configure-docker "$REGISTRIES" --quiet
  else
    log "no gcloud on this image; pulling from $REGISTRIES without credentials"
  fi
}

pull() {
  local delay
  for delay in 5 20 60; do
    docker pull --quiet "$1" && return
    log "could not pull $1; trying again in $delay s"
    sleep "$delay"
  done
  docker pull --quiet "$1"
}

trap finish EXIT
set -e
for disk in "${DISKS[@]}"; do
  mount_disk "${disk%%=*}" "${disk#*=}"
done
mkdir -p "$WORK_ROOT"
[[ $ID == cos ]] || install_docker
gpu_flags=()
if [[ $GPUS == 1 ]]; then
  install_gpu_driver
  install_container_toolkit
  gpu_flags=(--gpus=all)
fi
login_registries
pull "$WORKER_IMAGE"
if [[ -n $TASK_IMAGE ]]; then
  pull "$TASK_IMAGE" || log "could not pull $TASK_IMAGE; each task will try"
fi
docker rm --force "$WORKER_CONTAINER" >/dev/null 2>&1 || true
log "starting the worker"
docker run --rm --name="$WORKER_CONTAINER" --network=host \
  --stop-timeout="$STOP_TIMEOUT" \
  --volume=/var/run/docker.sock:/var/run/docker.sock \
  --volume="$WORK_ROOT:$WORK_ROOT" "${gpu_flags[@]}" \
  "$WORKER_IMAGE" "${WORKER_ARGS[@]}"
"""
