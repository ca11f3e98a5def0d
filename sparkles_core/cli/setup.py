"""The ``setup`` command: prepare a Google Cloud project for Sparkles.

It prints the ``gcloud`` and ``docker`` commands a new project needs, filled
in from the config (``project``, ``region``, the bucket of
``default_url_prefix``, ``sparklesworker_image``), and with ``--apply`` runs
them one by one, stopping at the first that fails. Steps that create
something already there are passed over, so it can be run again. It also
says which roles the account that submits jobs needs, which it does not
grant: the nodes' service account gets only what a node uses.

The worker image is built from a source checkout and pushed with::

    gcloud auth configure-docker REGION-docker.pkg.dev --quiet
    docker build --file sparkles_worker/Dockerfile --tag IMAGE .
    docker push IMAGE

where ``IMAGE`` is ``sparklesworker_image``, by default
``REGION-docker.pkg.dev/PROJECT/sparkles/sparkles-worker:VERSION``.
"""

from __future__ import annotations

import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import click

from sparkles_core.cli.context import CliContext, pass_context

if TYPE_CHECKING:
    from sparkles_core.config import Config

__all__ = ["WORKER_ACCOUNT", "WORKER_ROLES", "Step", "plan_steps", "setup"]

WORKER_ACCOUNT = "sparkles-worker"
# What a node does: records in Datastore, files in the bucket, pulling the
# images and writing its logs. It makes no Compute call: it records its exit
# status through the metadata server and powers itself off, and the
# submitting side deletes it, so it needs no Compute or IAM role.
WORKER_ROLES = (
    "roles/datastore.user",
    "roles/storage.objectAdmin",
    "roles/logging.logWriter",
    "roles/artifactregistry.reader",
)
# Firestore's API creates the Datastore-mode database; Datastore's serves it.
APIS = (
    "compute.googleapis.com",
    "datastore.googleapis.com",
    "firestore.googleapis.com",
    "storage.googleapis.com",
    "artifactregistry.googleapis.com",
    "logging.googleapis.com",
)
_EXISTS = re.compile(r"already exists|ALREADY_EXISTS|already own it", re.IGNORECASE)
_ARTIFACT_IMAGE = re.compile(
    r"(?P<location>[a-z0-9-]+)-docker\.pkg\.dev/(?P<project>[^/]+)/(?P<repo>[^/]+)/.+"
)


@dataclass(frozen=True)
class Step:
    """One command of the setup, and whether "already exists" is success."""

    title: str
    argv: tuple[str, ...]
    creates: bool = False

    @property
    def line(self) -> str:
        """Return the command as one shell line."""
        return shlex.join(self.argv)


@click.command()
@click.option("--apply", is_flag=True, help="Run the commands, not just print.")
@pass_context
def setup(state: CliContext, apply: bool) -> None:
    """Print (or run, with --apply) the steps that prepare a Google project.

    Example: sparkles -o project=my-project setup --apply
    """
    steps, notes = plan_steps(state.config())
    for note in notes:
        state.warn(note)
    for number, step in enumerate(steps, start=1):
        state.say(f"# {number}. {step.title}")
        if apply:
            _run(state, number, step)
        else:
            state.say(step.line)
    if apply:
        state.say("The project is ready for Sparkles.")


@dataclass(frozen=True)
class _Gcloud:
    """Make ``gcloud`` steps that all carry the project (and account)."""

    flags: tuple[str, ...]

    def __call__(self, title: str, *args: str, creates: bool = False) -> Step:
        return Step(title, ("gcloud", *args, *self.flags), creates)


def plan_steps(config: Config) -> tuple[list[Step], list[str]]:
    """Return the setup steps for the config, and notes for the user."""
    from sparkles_core.cluster.startup import default_worker_image

    project, region, bucket = _read_keys(config)
    flags = [f"--project={project}"]
    if config.account:
        flags.append(f"--account={config.account}")
    gcloud = _Gcloud(tuple(flags))
    image = config.sparklesworker_image or default_worker_image(project, region)

    image_steps, notes = _image_steps(image)
    notes.insert(0, _submitter_note(project))
    steps = [
        *_project_steps(gcloud, project, region, bucket),
        *_registry_steps(gcloud, project, image),
        *image_steps,
    ]
    return steps, notes


def _project_steps(
    gcloud: _Gcloud, project: str, region: str, bucket: str
) -> list[Step]:
    """Return the steps that prepare the APIs, bucket, account and database."""
    email = f"{WORKER_ACCOUNT}@{project}.iam.gserviceaccount.com"
    grants = [
        gcloud(
            f"Grant {role} to {email}",
            *("projects", "add-iam-policy-binding", project),
            *(f"--member=serviceAccount:{email}", f"--role={role}"),
            *("--condition=None", "--quiet"),
        )
        for role in WORKER_ROLES
    ]
    return [
        gcloud("Enable the APIs", "services", "enable", *APIS),
        gcloud(
            "Create the bucket",
            *("storage", "buckets", "create", f"gs://{bucket}"),
            *(f"--location={region}", "--uniform-bucket-level-access"),
            creates=True,
        ),
        gcloud(
            "Create the service account the nodes run as",
            *("iam", "service-accounts", "create", WORKER_ACCOUNT),
            "--display-name=Sparkles worker",
            creates=True,
        ),
        *grants,
        gcloud(
            "Create the Datastore database (Firestore in Datastore mode)",
            *("firestore", "databases", "create"),
            *(f"--location={region}", "--type=datastore-mode"),
            creates=True,
        ),
        gcloud(
            "Create the Datastore indexes",
            *("datastore", "indexes", "create", str(_index_file()), "--quiet"),
        ),
    ]


def _submitter_note(project: str) -> str:
    """Return what the account that submits jobs needs, beyond the nodes' own."""
    email = f"{WORKER_ACCOUNT}@{project}.iam.gserviceaccount.com"
    return (
        "Whoever submits jobs starts nodes that run as the service account "
        f"{email}, so needs roles/iam.serviceAccountUser on it, and "
        f"roles/compute.instanceAdmin.v1 in project {project!r} (a project "
        "owner has both); grant it with: gcloud iam service-accounts "
        f"add-iam-policy-binding {email} --member=user:YOU@example.com "
        f"--role=roles/iam.serviceAccountUser --project={project}"
    )


def _registry_steps(gcloud: _Gcloud, project: str, image: str) -> list[Step]:
    """Return the steps that make the image's registry ready to push to."""
    steps = []
    found = _ARTIFACT_IMAGE.fullmatch(image)
    if found is not None and found["project"] == project:
        steps.append(
            gcloud(
                f"Create the image repository {found['repo']!r}",
                *("artifacts", "repositories", "create", found["repo"]),
                *("--repository-format=docker", f"--location={found['location']}"),
                creates=True,
            )
        )
    registry = image.split("/", 1)[0]
    steps.append(
        Step(
            "Let docker push to the registry",
            ("gcloud", "auth", "configure-docker", registry, "--quiet"),
        )
    )
    return steps


def _read_keys(config: Config) -> tuple[str, str, str]:
    from sparkles_core.errors import ConfigError

    prefix = config.default_url_prefix or ""
    if not config.project or not config.region or not prefix.startswith("gs://"):
        raise ConfigError(
            "sparkles setup needs the keys project, region (or zones) and "
            "default_url_prefix (gs://bucket/prefix); add them to the [config] "
            "section of .sparkles or pass -o key=value.",
            key="project" if not config.project else "default_url_prefix",
        )
    bucket = prefix.removeprefix("gs://").split("/", 1)[0]
    return config.project, config.region, bucket


def _image_steps(image: str) -> tuple[list[Step], list[str]]:
    """Return the steps that build and push the worker image."""
    root = _source_root()
    if root is None:
        note = (
            "This installation has no source checkout, so the worker image "
            f"steps are left out; build {image} from one with "
            "'docker build --file sparkles_worker/Dockerfile --tag IMAGE .'"
        )
        return [], [note]
    dockerfile = root / "sparkles_worker" / "Dockerfile"
    build = ("docker", "build", f"--file={dockerfile}", f"--tag={image}", str(root))
    return [
        Step("Build the worker image", build),
        Step("Push the worker image", ("docker", "push", image)),
    ], []


def _index_file() -> Path:
    import sparkles_core.store

    return Path(sparkles_core.store.__file__).parent / "index.yaml"


def _source_root() -> Path | None:
    """Return the source checkout this package runs from, if it does."""
    import sparkles_core

    root = Path(sparkles_core.__file__).resolve().parent.parent
    if (root / "pyproject.toml").is_file() and (root / "sparkles_worker").is_dir():
        return root
    return None


def _run(state: CliContext, number: int, step: Step) -> None:
    """Run one step; raise SparklesError if it fails."""
    from sparkles_core.errors import SparklesError

    state.say(step.line)
    try:
        done = subprocess.run(
            step.argv, stdin=subprocess.DEVNULL, capture_output=True, text=True
        )
    except OSError as exc:
        raise SparklesError(
            f"Setup step {number} ({step.title}) could not start "
            f"{step.argv[0]!r}: {exc.strerror}; install it (the Google Cloud "
            "CLI, or Docker) and run 'sparkles setup --apply' again."
        ) from exc
    output = (done.stdout + done.stderr).strip()
    if done.returncode == 0:
        return
    if step.creates and _EXISTS.search(output):
        state.say("already there")
        return
    if output:
        state.warn(output)
    raise SparklesError(
        f"Setup step {number} ({step.title}) failed with exit status "
        f"{done.returncode}; fix what it printed above and run 'sparkles setup "
        "--apply' again (it is safe to repeat)."
    )
