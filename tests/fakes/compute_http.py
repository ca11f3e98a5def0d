"""The HTTP side of the fake Compute API: JSON in and out, and list pages."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from typing import Any

from tests.fakes.compute_errors import ApiError
from tests.fakes.compute_regions import BASE

__all__ = ["handler_for", "now", "page"]

Handle = Callable[[str, str, "dict[str, Any] | None"], Any]


def page(
    kind: str, project: str, zone: str, items: list[Any], query: dict[str, str]
) -> Any:
    """Return the page of a zone's list that ``pageToken`` and ``maxResults`` ask."""
    start = int(query.get("pageToken") or 0)
    size = int(query.get("maxResults") or 500)
    reply: dict[str, Any] = {
        "kind": kind,
        "id": f"projects/{project}/zones/{zone}",
        "selfLink": f"{BASE}/projects/{project}/zones/{zone}",
    }
    if items[start : start + size]:
        reply["items"] = items[start : start + size]
    if start + size < len(items):
        reply["nextPageToken"] = str(start + size)
    return reply


def now() -> str:
    """Return the time as the API writes it."""
    return time.strftime("%Y-%m-%dT%H:%M:%S.000-00:00", time.gmtime())


def handler_for(handle: Handle) -> type[BaseHTTPRequestHandler]:
    """Return a request handler class that answers with ``handle``'s JSON."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            try:
                body = json.loads(raw) if raw.strip() else None
                status, reply = 200, handle(self.command, self.path, body)
            except ApiError as exc:
                status, reply = exc.status, exc.body()
            data = json.dumps(reply).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output quiet."""

    return Handler
