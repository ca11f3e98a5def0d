"""The part of the Compute API's list filter syntax the fake understands.

Terms such as ``labels.sparkles-cluster = "c-1"`` or ``status != RUNNING``,
optionally in parentheses, joined by ``AND``. Anything else is refused with
the real API's 400, so a provisioner that starts relying on more syntax
fails here first.
"""

from __future__ import annotations

import re
from typing import Any

from tests.fakes.compute_errors import ApiError

_TERM = re.compile(
    r"\(?\s*(?P<field>[A-Za-z][\w.-]*)\s*(?P<op>!=|=)\s*"
    r'(?P<value>"[^"]*"|[^\s()"]+)\s*\)?'
)


def matches(resource: dict[str, Any], query: dict[str, str]) -> bool:
    """Return True if the resource passes the request's ``filter``."""
    text = query.get("filter", "").strip()
    if not text:
        return True
    for term in re.split(r"\s+AND\s+", text):
        match = _TERM.fullmatch(term.strip())
        if match is None:
            raise ApiError(
                400,
                "invalid",
                f"Invalid value for field 'filter': '{text}'. Invalid list "
                "filter expression.",
            )
        actual = _field(resource, match["field"])
        equal = actual == match["value"].strip('"')
        if equal != (match["op"] == "="):
            return False
    return True


def _field(resource: dict[str, Any], path: str) -> Any:
    if path.startswith("labels."):
        return resource.get("labels", {}).get(path.removeprefix("labels."))
    value: Any = resource
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
