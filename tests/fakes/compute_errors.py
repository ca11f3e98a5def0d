"""Errors the fake Compute API returns, shaped as the real API's.

An HTTP error carries ``{"error": {"code", "message", "errors": [...]}}``.
A failure found while the operation runs (quota, no capacity) comes back as
an operation that is DONE with an ``error`` and ``httpErrorStatusCode``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

__all__ = ["INSERT_ERRORS", "ApiError", "check_instance"]

_NAME = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
_LABEL_KEY = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_LABEL_VALUE = re.compile(r"[a-z0-9_-]{0,63}")


class ApiError(Exception):
    """An HTTP error reply."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message

    def body(self) -> dict[str, Any]:
        """Return the JSON error reply."""
        entry = {"message": self.message, "domain": "global", "reason": self.reason}
        return {
            "error": {"code": self.status, "message": self.message, "errors": [entry]}
        }


@dataclass(frozen=True)
class InsertFailure:
    """How one kind of insert failure shows.

    With ``http_status`` the request itself is refused; else the insert
    starts and its operation ends with ``code``. The message may name
    ``{where}`` (the instance's path), ``{zone}`` and ``{machine}``.
    """

    http_status: int | None = None
    reason: str = "forbidden"
    code: str = ""
    message: str = ""
    op_status: int = 403
    op_message: str = "FORBIDDEN"

    def raise_now(self, project: str, zone: str, body: dict[str, Any]) -> None:
        """Refuse the request itself, for failures that do not wait."""
        if self.http_status is not None:
            where = f"projects/{project}/zones/{zone}/instances/{body['name']}"
            machine = str(body.get("machineType", "")).rsplit("/", 1)[-1]
            text = self.message.format(where=where, zone=zone, machine=machine)
            raise ApiError(self.http_status, self.reason, text)

    def operation_fields(self, target: dict[str, Any]) -> dict[str, Any]:
        """Return the fields of a DONE operation that failed."""
        return {
            "error": {"errors": [{"code": self.code, "message": self.message}]},
            "httpErrorStatusCode": self.op_status,
            "httpErrorMessage": self.op_message,
        }


INSERT_ERRORS = {
    "quota": InsertFailure(
        code="QUOTA_EXCEEDED",
        message="Quota 'CPUS' exceeded.  Limit: 8.0 in region us-central1.",
    ),
    "capacity": InsertFailure(
        code="ZONE_RESOURCE_POOL_EXHAUSTED",
        message="The zone does not have enough resources available to fulfill "
        "the request.  Try a different zone, or try again later.",
        op_status=503,
        op_message="SERVICE UNAVAILABLE",
    ),
    "permission": InsertFailure(
        http_status=403,
        message="Required 'compute.instances.create' permission for '{where}'",
    ),
    # Compute answers a burst of calls with 403 rateLimitExceeded, in words
    # that speak of a quota, though one that refills within the minute.
    "rate": InsertFailure(
        http_status=403,
        reason="rateLimitExceeded",
        message="Quota exceeded for quota metric 'Queries' and limit 'Queries "
        "per minute' of service 'compute.googleapis.com'.",
    ),
    "unavailable": InsertFailure(
        http_status=503,
        reason="backendError",
        message="The service is currently unavailable.",
    ),
    "unsupported": InsertFailure(
        http_status=400,
        reason="invalid",
        message="Invalid value for field 'resource.machineType': "
        "'zones/{zone}/machineTypes/{machine}'. Machine type with name "
        "'{machine}' does not exist in zone '{zone}'.",
    ),
}


def check_instance(body: dict[str, Any]) -> None:
    """Refuse an instance the real API would refuse, with its kind of error."""
    name = str(body.get("name", ""))
    if not _NAME.fullmatch(name):
        _invalid("resource.name", name)
    if "machineType" not in body:
        _invalid("resource.machineType", "")
    boots = [disk for disk in body.get("disks", []) if disk.get("boot")]
    if len(boots) != 1:
        _invalid("resource.disks", f"{len(boots)} boot disks")
    for key, value in body.get("labels", {}).items():
        if not _LABEL_KEY.fullmatch(key) or not _LABEL_VALUE.fullmatch(value):
            _invalid(f"resource.labels.{key}", value)
    scheduling = body.get("scheduling", {})
    stays_up = scheduling.get("onHostMaintenance", "MIGRATE") != "TERMINATE"
    if scheduling.get("provisioningModel") == "SPOT" and (
        stays_up or scheduling.get("automaticRestart", True)
    ):
        _invalid("resource.scheduling", "spot instances cannot restart or migrate")
    if body.get("guestAccelerators") and stays_up:
        _invalid("resource.scheduling", "instances with GPUs cannot live-migrate")


def _invalid(field: str, value: str) -> None:
    raise ApiError(400, "invalid", f"Invalid value for field '{field}': '{value}'.")
