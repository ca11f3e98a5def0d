"""Compute Engine errors, as one-line ClusterErrors that say what to do.

Every Google error the provisioner meets is translated here, with one of
three verdicts that decide what the provisioner does next:

- ``shortage``: the zone has no room for the machine right now (a stock-out,
  ``ZONE_RESOURCE_POOL_EXHAUSTED``), or the service asks to slow down (429,
  ``rateLimitExceeded``) or is failing (5xx). Try another zone, or later.
- ``unsuitable``: the zone does not offer the machine type or accelerator.
  Leave the zone out from then on.
- ``fatal``: the project's quota is spent, a permission is missing, the
  request is wrong. Retrying cannot help; a person must act.

The message keeps what Google said but not the request's URL, whose host and
query add nothing a user can act on.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from sparkles_core.errors import ClusterError

__all__ = ["ComputeError", "Explainer", "Verdict"]

ENDPOINT_ENV = "SPARKLES_COMPUTE_ENDPOINT"

_CAPACITY_CODES = ("ZONE_RESOURCE_POOL_EXHAUSTED", "RESOURCE_POOL_EXHAUSTED")
_RATE_REASONS = ("rateLimitExceeded", "userRateLimitExceeded")
_NOT_IN_ZONE = re.compile(r"does not exist in zone|not available in zone", re.I)
# How the REST client starts its messages: "POST https://host/path?query: ".
_REQUEST_PREFIX = re.compile(r"^(GET|POST|PUT|PATCH|DELETE) \S+: ")


class Verdict(StrEnum):
    """What a refusal means for the next attempt."""

    SHORTAGE = "shortage"
    UNSUITABLE = "unsuitable"
    FATAL = "fatal"


class ComputeError(ClusterError):
    """A Compute Engine call failed; ``verdict`` says whether to retry."""

    def __init__(
        self, message: str, verdict: Verdict = Verdict.FATAL, zone: str | None = None
    ) -> None:
        super().__init__(message)
        self.verdict, self.zone = verdict, zone


@dataclass(frozen=True)
class Explainer:
    """Turn the errors of one project's calls into ComputeErrors."""

    project: str
    cluster_url: str

    @contextlib.contextmanager
    def calling(
        self, action: str, zone: str | None = None, *passing: type[BaseException]
    ) -> Iterator[None]:
        """Translate Google and transport errors raised inside."""
        from google.api_core import exceptions
        from google.auth import exceptions as auth_exceptions
        from requests import RequestException

        try:
            yield
        except passing:
            raise
        except exceptions.GoogleAPICallError as exc:
            reasons = [str(entry.get("reason", "")) for entry in _details(exc)]
            text = _REQUEST_PREFIX.sub("", exc.message or str(exc))
            raise self.error(action, zone, reasons, text, exc.code) from exc
        except auth_exceptions.DefaultCredentialsError as exc:
            raise ComputeError(
                f"{action}: no Google credentials found; run 'gcloud auth "
                "application-default login', set GOOGLE_APPLICATION_CREDENTIALS "
                "or set service_account_key."
            ) from exc
        except (auth_exceptions.TransportError, RequestException) as exc:
            raise ComputeError(
                f"{action}: cannot reach Compute Engine ({type(exc).__name__}); "
                f"check the network, and {ENDPOINT_ENV} if set.",
                Verdict.SHORTAGE,
                zone,
            ) from exc
        except auth_exceptions.GoogleAuthError as exc:
            raise ComputeError(
                f"{action}: Google refused the credentials "
                f"({type(exc).__name__}); check service_account_key, or run "
                "'gcloud auth application-default login'."
            ) from exc

    def error(
        self,
        action: str,
        zone: str | None,
        codes: list[str],
        message: str,
        status: int | None = None,
        op_error: bool = False,
    ) -> ComputeError:
        """Return the ComputeError for a refusal, with what to do about it."""
        text = _one_line(message).rstrip(".")
        verdict = _verdict(codes, text, status)
        hint = self._hint(verdict, zone, codes, text, status, op_error)
        line = f"{action} failed ({text}){': ' + hint if hint else '.'}"
        return ComputeError(line, verdict, zone)

    def _hint(
        self,
        verdict: Verdict,
        zone: str | None,
        codes: list[str],
        text: str,
        status: int | None,
        op_error: bool,
    ) -> str | None:
        """Return what the user can do about an error, if we know."""
        where = f"zone {zone!r}" if zone else "the zone"
        if verdict is Verdict.UNSUITABLE:
            return f"{where} does not offer it; name other zones with 'zones'."
        if any(code.startswith(_CAPACITY_CODES) for code in codes):
            return f"{where} has no capacity left for this machine type right now."
        if verdict is Verdict.SHORTAGE:
            return "the service is busy or failing right now."
        return self._fatal_hint(codes, text, status, op_error)

    def _fatal_hint(
        self, codes: list[str], text: str, status: int | None, op_error: bool
    ) -> str | None:
        lowered = " ".join([*codes, text]).lower()
        if "quota" in lowered:
            return (
                f"the Compute Engine quota of project {self.project!r} is used "
                "up; request more (console: IAM & Admin > Quotas) or ask for "
                "fewer nodes."
            )
        if "serviceaccount" in lowered.replace(" ", ""):
            return (
                "the nodes' service account is missing or unusable; run "
                "'sparkles setup', or set service_account_key."
            )
        if status == 401:
            return "run 'gcloud auth application-default login'."
        if status == 403:
            return (
                "grant your account roles/compute.instanceAdmin.v1 in project "
                f"{self.project!r}, and roles/iam.serviceAccountUser on the "
                "nodes' service account, as 'sparkles setup' shows."
            )
        if status == 404 and not op_error:
            return f"check the project and zones of the cluster {self.cluster_url!r}."
        return None


def _verdict(codes: list[str], text: str, status: int | None) -> Verdict:
    """Return whether the refusal passes with time, with another zone, or never."""
    if any(code.startswith(_CAPACITY_CODES) for code in codes):
        return Verdict.SHORTAGE
    if any(code in _RATE_REASONS for code in codes) or status == 429:
        return Verdict.SHORTAGE
    if status is not None and status >= 500:
        return Verdict.SHORTAGE
    if _NOT_IN_ZONE.search(text):
        return Verdict.UNSUITABLE
    return Verdict.FATAL


def _details(exc: Any) -> list[Mapping[str, Any]]:
    """Return the error entries of an API error response, if any."""
    entries = getattr(exc, "errors", None) or []
    return [entry for entry in entries if isinstance(entry, Mapping)]


def _one_line(text: str) -> str:
    return " ".join(text.split())
