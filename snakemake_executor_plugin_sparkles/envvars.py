"""Keep the values of Snakemake's ``--envvars`` out of the task records.

Those variables are meant for credentials, and a task record is read by
anyone who can read the store (``sparkles show``, ``sparkles list --format
json``). So a job's variables go into one storage object beside its logs::

    jobs/<job>/env.json     {"NAME": "value", ...}

and its task carries only that key (``TaskSpec.secret_env_key``); the worker
reads the object when it stages the task. ``sparkles delete`` removes it
with the rest of the job's prefix. No value is ever logged.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from snakemake_interface_common.exceptions import WorkflowError

from sparkles_cas.errors import ObjectNotFound
from sparkles_cas.storage import ObjectStorage
from sparkles_core import layout

__all__ = ["ENV_OBJECT", "discard_envvars", "store_envvars"]

logger = logging.getLogger(__name__)

ENV_OBJECT = "env.json"


def store_envvars(
    storage: ObjectStorage, job_id: str, env: Mapping[str, str]
) -> str | None:
    """Store the job's variables as one object; return its key (None if none)."""
    if not env:
        return None
    key = layout.job_prefix(job_id) + ENV_OBJECT
    data = json.dumps(dict(env), sort_keys=True).encode()
    # Job ids are new with each submission: an object already there is some
    # other run's, and neither overwritten nor handed to this job; unless it
    # holds these very bytes, as when a write whose reply was lost is sent
    # again and meets itself.
    if not storage.put_bytes(key, data, if_absent=True) and not _holds(
        storage, key, data
    ):
        raise WorkflowError(
            f"Sparkles could not store the environment of job {job_id}: "
            f"{storage.url_of(key)!r} already exists with other content; "
            "delete that object and run again."
        )
    logger.debug("Job %s: %d variables stored in %s", job_id, len(env), key)
    return key


def _holds(storage: ObjectStorage, key: str, data: bytes) -> bool:
    """Return True if the object at ``key`` holds exactly ``data``."""
    try:
        return storage.get_bytes(key) == data
    except ObjectNotFound:
        return False


def discard_envvars(storage: ObjectStorage, key: str | None) -> None:
    """Delete the variables of a job that was not stored after all."""
    if key is None:
        return
    try:
        storage.delete([key])
    # Broad on purpose: this runs while another error is on its way out,
    # which must not be hidden by a failing clean-up.
    except Exception as exc:
        logger.warning("Could not delete %s: %s; delete it by hand", key, exc)
