"""The Google credentials that this process's cloud clients act with.

With ``service_account_key`` in the config, the Datastore, Cloud Storage and
Compute Engine clients all act as that service account. Loading the config
names the key file (:func:`use_key_file`); the file is read once, when the
first client needs it, into ``google.oauth2`` service-account credentials
that every client then shares. Without the key, :func:`google_credentials`
returns None and each client finds Application Default Credentials (ADC)
itself: ``GOOGLE_APPLICATION_CREDENTIALS``, ``gcloud auth application-default
login``, or a node's own service account.

The key's private part stays inside the credentials object: errors name the
file and say what is wrong with it, never what it holds.
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sparkles_core.errors import BackendError, ConfigError

__all__ = [
    "ServiceAccountKey",
    "google_credentials",
    "key_file",
    "read_key",
    "use_key_file",
]

logger = logging.getLogger(__name__)

KEY = "service_account_key"
CLOUD_PLATFORM_SCOPE = "https://www.googleapis.com/auth/cloud-platform"
_INSTALL = "pip install 'snakemake-executor-plugin-sparkles[gcp]'"
# Fields every service-account key file from the Cloud console carries.
_REQUIRED = ("client_email", "private_key", "token_uri")

_lock = threading.Lock()
_key_file: Path | None = None


@dataclass(frozen=True)
class ServiceAccountKey:
    """A service account's key file, read: who it is and its credentials."""

    path: Path
    email: str
    credentials: Any


def use_key_file(path: Path | None) -> None:
    """Make the clients opened from now on act with this key (None: ADC)."""
    global _key_file
    with _lock:
        _key_file = None if path is None else path.expanduser()


def key_file() -> Path | None:
    """Return the key file the clients act with, or None for ADC."""
    with _lock:
        return _key_file


def google_credentials() -> Any | None:
    """Return the configured key's credentials, or None to let clients use ADC."""
    path = key_file()
    return None if path is None else read_key(path).credentials


def read_key(path: Path) -> ServiceAccountKey:
    """Return the service account of the key file at ``path``, read once.

    Raise ConfigError, naming the file but none of its contents, if it is
    not a service-account key.
    """
    return _read_key(path.expanduser().absolute())


@functools.cache
def _read_key(path: Path) -> ServiceAccountKey:
    info = _load_json(path)
    missing = [field for field in _REQUIRED if not isinstance(info.get(field), str)]
    if missing:
        raise _bad_key(path, f"it has no {', '.join(missing)}")
    if info.get("type") != "service_account":
        raise _bad_key(path, "its type is not service_account")
    credentials = _credentials(path, info)
    logger.info("Credentials: acting as %s (key %s)", info["client_email"], path)
    return ServiceAccountKey(path, info["client_email"], credentials)


def _load_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise _bad_key(path, f"it cannot be read ({exc.strerror})") from None
    except (ValueError, UnicodeDecodeError):
        # The parser's message quotes the text around the fault: never shown.
        raise _bad_key(path, "it is not JSON") from None
    if not isinstance(data, dict):
        raise _bad_key(path, "it is not a JSON object")
    return data


def _credentials(path: Path, info: dict[str, Any]) -> Any:
    try:
        from google.oauth2 import service_account
    except ImportError as exc:
        raise BackendError(
            f"The config key {KEY} needs the Google Cloud clients; run: {_INSTALL}"
        ) from exc
    try:
        # Scoped now, so that every client shares this one object rather
        # than each making its own scoped copy.
        make = service_account.Credentials.from_service_account_info
        scopes = [CLOUD_PLATFORM_SCOPE]
        return make(info, scopes=scopes)  # type: ignore[no-untyped-call]
    except (ValueError, TypeError, IndexError):
        # What the key parser says may quote the key: never shown.
        raise _bad_key(path, "its private_key is not a valid key") from None


def _bad_key(path: Path, problem: str) -> ConfigError:
    return ConfigError(
        f"The {KEY} file {str(path)!r} is not a usable service-account key: "
        f"{problem}; download a JSON key of the account (IAM & Admin > Service "
        f"accounts > Keys) or remove {KEY} to use your application-default "
        "credentials.",
        key=KEY,
    )
