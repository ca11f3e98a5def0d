"""The Google Cloud Storage client behind ``gs://`` URLs, and its errors.

The client library is imported here, when the first ``gs://`` URL is
opened, never when ``sparkles_cas`` is. Its errors are turned into
``StorageError`` at this boundary, with messages that name the object and
the HTTP status but never a request URL: the URL of a resumable upload
carries its session, which lets anyone holding it write the object.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from sparkles_cas.errors import ObjectNotFound, StorageError, UnsupportedURL

if TYPE_CHECKING:
    from google.cloud.storage import (  # type: ignore[import-untyped, unused-ignore]
        Client,
    )

__all__ = ["CONNECTIONS", "make_client", "translating"]

# Room for the parallel checks of the storage backend (32 threads) beside
# the CAS's transfer threads; a pool smaller than the number of threads
# opens and drops a connection for every request beyond its size.
CONNECTIONS = 64

_MISSING_CLIENT = (
    "Cannot open {url!r}: the Google Cloud Storage client is not installed; "
    "run pip install 'snakemake-executor-plugin-sparkles[gcp]'."
)

_NO_CREDENTIALS = (
    "Google credentials are missing or were refused; run 'gcloud auth "
    "application-default login' or set GOOGLE_APPLICATION_CREDENTIALS"
)


def make_client(url: str, credentials: Any = None) -> Client:
    """Return a Cloud Storage client for ``url`` with a wide connection pool.

    It acts with ``credentials`` (``google.auth`` credentials), else with
    Application Default Credentials. Raise UnsupportedURL, saying what to
    install, if the library is missing.
    """
    try:
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage  # type: ignore[import-untyped, unused-ignore]
    except ImportError as exc:
        raise UnsupportedURL(_MISSING_CLIENT.format(url=url), url) from exc

    # An emulator checks no credentials; looking for some would fail on a
    # machine without a Google account. Object requests need no project.
    if os.environ.get("STORAGE_EMULATOR_HOST"):
        credentials = AnonymousCredentials()  # type: ignore[no-untyped-call, unused-ignore]
    with translating("open", url):
        client = storage.Client(project=None, credentials=credentials)
        # The client offers its HTTP session only as a private attribute.
        _widen_pool(client._http)
    return client


def _widen_pool(session: Any) -> None:
    """Let the requests session keep a connection per parallel request."""
    from requests.adapters import (  # type: ignore[import-untyped, unused-ignore]
        HTTPAdapter,
    )

    if session.is_mtls:
        return  # keep the adapter that carries the client certificate
    adapter = HTTPAdapter(pool_connections=2, pool_maxsize=CONNECTIONS)
    session.mount("https://", adapter)
    session.mount("http://", adapter)


@contextlib.contextmanager
def translating(action: str, url: str) -> Iterator[None]:
    """Turn errors of the client, met while ``action``-ing ``url``, into ours.

    A missing object is ObjectNotFound when reading; any other failure,
    including a missing bucket on a write, is a StorageError.
    """
    from google.api_core.exceptions import NotFound

    try:
        yield
    except NotFound as exc:
        if action == "read":
            raise ObjectNotFound(url) from exc
        raise _failure(action, url, exc) from exc
    except _client_errors() as exc:
        raise _failure(action, url, exc) from exc


def _failure(action: str, url: str, exc: Exception) -> StorageError:
    """Return the StorageError for a failed ``action`` on ``url``."""
    return StorageError(f"Cannot {action} {url!r}: {_reason(exc)}.", url)


@functools.cache
def _client_errors() -> tuple[type[Exception], ...]:
    """Return the exception types by which the client reports a failure."""
    from google.api_core.exceptions import GoogleAPIError
    from google.auth.exceptions import GoogleAuthError
    from google.cloud.storage.exceptions import (  # type: ignore[import-untyped, unused-ignore]
        DataCorruption,
        InvalidResponse,
    )
    from requests import (  # type: ignore[import-untyped, unused-ignore]
        RequestException,
    )

    errors: tuple[type[Exception], ...] = (
        GoogleAPIError,
        GoogleAuthError,
        RequestException,
        DataCorruption,
        InvalidResponse,
    )
    return errors


def _reason(exc: Exception) -> str:
    """Describe ``exc`` in a few words, leaving out any request URL."""
    from google.api_core.exceptions import GoogleAPICallError, RetryError
    from google.auth.exceptions import GoogleAuthError

    if isinstance(exc, GoogleAPICallError) and exc.code:
        status = f"HTTP {exc.code}"
        with contextlib.suppress(ValueError):
            status += f" {HTTPStatus(exc.code).phrase}"
        detail = _first_message(exc.errors)
        return f"{status}: {detail}" if detail else status
    if isinstance(exc, RetryError):
        return f"gave up retrying after {type(exc.cause).__name__}"
    if isinstance(exc, GoogleAuthError):
        return _NO_CREDENTIALS
    return type(exc).__name__


def _first_message(errors: list[Any]) -> str:
    """Return the message of the first error the server listed, if any."""
    for error in errors:
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return ""
