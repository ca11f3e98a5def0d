"""A fake of the Compute Engine REST API whose instances are worker processes.

It serves the calls the ``gce://`` provisioner makes, with the JSON shapes
of the real API (``kind``, ``id``, ``selfLink``, ``status``, ...), under
``/compute/v1/projects/{project}/``:

    POST   zones/{zone}/instances                        insert: starts a worker
    GET    zones/{zone}/instances[?filter=&maxResults=]  list, filtered
    GET    zones/{zone}/instances/{name}                 get
    DELETE zones/{zone}/instances/{name}                 delete: SIGTERM, SIGKILL
    GET    zones/{zone}/instances/{name}/getGuestAttributes?queryPath=
    GET    zones/{zone}/operations[?filter=]             list (preemptions too)
    GET    zones/{zone}/operations/{op}                  get
    POST   zones/{zone}/operations/{op}/wait             wait
    GET    aggregated/instances[?filter=]                list across zones
    GET    regions/{region}                              get: the region's zones

Only the zones of :data:`tests.fakes.compute_regions.REGIONS` exist.

Every operation comes back already DONE, since the client library's own
polling would ignore a custom endpoint (unless ``operations_done`` is off:
then it is RUNNING until waited for). An inserted instance runs
``python -m sparkles_worker`` with the arguments of its
``sparkles-worker-args`` metadata item, its folders moved under the fake's
root (see :mod:`tests.fakes.compute_nodes`).
"""

from __future__ import annotations

import re
import secrets
import subprocess
import threading
import time
from dataclasses import dataclass
from http.server import ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.fakes.compute_errors import INSERT_ERRORS, ApiError, check_instance
from tests.fakes.compute_filter import matches
from tests.fakes.compute_http import handler_for, now, page
from tests.fakes.compute_nodes import FakeNode
from tests.fakes.compute_regions import (
    BASE,
    check_zone,
    region_resource,
    scoped_lists,
)

_ROUTE = re.compile(
    r"/compute/v1/projects/(?P<project>[^/]+)/zones/(?P<zone>[^/]+)/"
    r"(?P<kind>instances|operations)(?:/(?P<name>[^/]+))?(?:/(?P<verb>[^/]+))?"
)
_PROJECT_ROUTE = re.compile(
    r"/compute/v1/projects/(?P<project>[^/]+)/"
    r"(?:aggregated/(?P<aggregated>instances)|regions/(?P<region>[^/]+))"
)
# The calls besides inserts that a test can make fail.
FAILING_CALLS = ("list", "preemptions", "guest-attributes", "region")


@dataclass
class Call:
    """One request the fake received."""

    method: str
    path: str
    query: dict[str, str]
    body: dict[str, Any] | None


class FakeCompute:
    """The fake API's state, and the handles a test uses to act as Google."""

    def __init__(self, root: Path, stop_grace_s: float = 20.0) -> None:
        self.root = root
        self.stop_grace_s = stop_grace_s
        # Off, operations are handed out RUNNING and finish when waited for.
        self.operations_done = True
        self.calls: list[Call] = []
        self._nodes: dict[str, FakeNode] = {}
        self._operations: dict[str, dict[str, Any]] = {}
        self._insert_errors: list[tuple[str, str | None]] = []
        self._call_errors: dict[str, list[str]] = {}
        self._lock = threading.RLock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(self.handle))
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        """Return the URL to give SPARKLES_COMPUTE_ENDPOINT."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FakeCompute:
        """Start serving."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and kill every worker still running."""
        self._server.shutdown()
        self._server.server_close()
        for node in list(self._nodes.values()):
            node.stop(grace_s=0)

    # -- what a test does to the fake ---------------------------------------

    def fail_next_insert(self, kind: str, zone: str | None = None) -> None:
        """Make the next insert (in ``zone``, if given) fail.

        ``kind`` is one of :data:`tests.fakes.compute_errors.INSERT_ERRORS`:
        ``quota``, ``capacity``, ``permission``, ``rate``, ``unavailable``
        or ``unsupported``.
        """
        assert kind in INSERT_ERRORS, kind
        with self._lock:
            self._insert_errors.append((kind, zone))

    def fail_next_list(self, kind: str) -> None:
        """Make the next aggregated listing fail as a refused ``kind`` insert."""
        self.fail_next_call("list", kind)

    def fail_next_call(self, call: str, kind: str) -> None:
        """Make the next ``call`` fail as a refused ``kind`` insert.

        ``call`` is one of :data:`FAILING_CALLS`: ``list`` (instances across
        zones), ``preemptions`` (a zone's operations), ``guest-attributes``
        or ``region`` (a region's zones).
        """
        assert call in FAILING_CALLS, call
        assert INSERT_ERRORS[kind].http_status is not None, kind
        with self._lock:
            self._call_errors.setdefault(call, []).append(kind)

    def inserts(self) -> list[tuple[str, str]]:
        """Return the zone and provisioning model of every insert asked for."""
        with self._lock:
            return [
                (call.path.split("/zones/")[1].split("/")[0], _model(call.body))
                for call in self.calls
                if call.method == "POST" and call.path.endswith("/instances")
            ]

    def instance(self, name: str) -> dict[str, Any]:
        """Return the stored resource of an instance."""
        with self._lock:
            self._nodes[name].sync()
            return self._nodes[name].resource

    def names(self) -> list[str]:
        """Return the names of the instances that exist."""
        with self._lock:
            return sorted(self._nodes)

    def set_status(self, name: str, status: str) -> None:
        """Force an instance's status, as Google would move it."""
        with self._lock:
            self._nodes[name].resource["status"] = status

    def worker(self, name: str) -> subprocess.Popen[bytes]:
        """Return the worker process of an instance."""
        proc = self._nodes[name].proc
        assert proc is not None
        return proc

    def preempt(self, name: str, graceful: bool = True, keep: bool = False) -> None:
        """Preempt a spot instance: notice, stop, then (unless ``keep``) delete.

        With ``graceful`` the worker gets SIGTERM and 30 s, as on a spot VM;
        without, the power goes at once.
        """
        with self._lock:
            node = self._nodes[name]
            node.resource["status"] = "STOPPING"
            self._operation(node.resource, "compute.instances.preempted")
        node.stop(grace_s=30.0 if graceful else 0.0)
        with self._lock:
            node.resource["status"] = "TERMINATED"
            if not keep:
                del self._nodes[name]

    # -- the API ----------------------------------------------------------------

    def handle(self, method: str, url: str, body: dict[str, Any] | None) -> Any:
        """Serve one request; return the JSON reply or raise ApiError."""
        parts = urlsplit(url)
        query = {key: values[0] for key, values in parse_qs(parts.query).items()}
        with self._lock:
            self.calls.append(Call(method, parts.path, query, body))
        wide = _PROJECT_ROUTE.fullmatch(parts.path)
        if wide is not None and method == "GET":
            return self._project_call(wide, query)
        route = _ROUTE.fullmatch(parts.path)
        if route is None:
            raise ApiError(404, "notFound", f"No such API path {parts.path!r}")
        project, zone, kind = route["project"], route["zone"], route["kind"]
        name, verb = route["name"], route["verb"]
        check_zone(project, zone)
        if kind == "operations":
            if name is None:
                self._raise_injected("preemptions", project, zone)
            if verb == "wait" and name in self._operations:
                self._operations[name]["status"] = "DONE"
            return self._operations_call(method, project, zone, name, query)
        if name is None and method == "POST":
            return self._insert(project, zone, body or {})
        if name is None:
            return self._list(project, zone, query)
        if method == "DELETE" and verb is None:
            return self._delete(project, zone, name)
        if verb == "getGuestAttributes":
            self._raise_injected("guest-attributes", project, zone)
            return self._guest_attributes(project, zone, name, query)
        if method == "GET" and verb is None:
            return self._get(project, zone, name)
        raise ApiError(400, "invalid", f"Unsupported call {method} {parts.path}")

    def _project_call(self, route: re.Match[str], query: dict[str, str]) -> Any:
        project = route["project"]
        if route["region"]:
            self._raise_injected("region", project, "-")
            return region_resource(project, route["region"])
        self._raise_injected("list", project, "-")
        with self._lock:
            nodes = [n for n in self._nodes.values() if _of(n.resource, project)]
            for node in nodes:
                node.sync()
            items = [n.resource for n in nodes if matches(n.resource, query)]
        return {
            "kind": "compute#instanceAggregatedList",
            "id": f"projects/{project}/aggregated/instances",
            "items": scoped_lists(items, "instances"),
            "selfLink": f"{BASE}/projects/{project}/aggregated/instances",
        }

    def _raise_injected(self, call: str, project: str, zone: str) -> None:
        """Refuse this ``call`` if a test asked for it to fail."""
        with self._lock:
            due = self._call_errors.get(call)
            if due:
                INSERT_ERRORS[due.pop(0)].raise_now(project, zone, {"name": "-"})

    def _next_failure(self, zone: str) -> Any:
        """Return the injected failure due for an insert in ``zone``, if any."""
        for index, (kind, where) in enumerate(self._insert_errors):
            if where in (None, zone):
                del self._insert_errors[index]
                return INSERT_ERRORS[kind]
        return None

    def _insert(self, project: str, zone: str, body: dict[str, Any]) -> Any:
        check_instance(body)
        with self._lock:
            failure = self._next_failure(zone)
            if failure is not None:
                failure.raise_now(project, zone, body)
                return self._operation(
                    self._resource(project, zone, body), "insert", failure
                )
            if body["name"] in self._nodes:
                raise ApiError(
                    409, "alreadyExists", f"The resource '{body['name']}' exists"
                )
            resource = self._resource(project, zone, body)
            node = FakeNode(resource)
            node.boot(self.root)
            self._nodes[body["name"]] = node
            return self._operation(resource, "insert")

    def _resource(self, project: str, zone: str, body: dict[str, Any]) -> Any:
        zone_url = f"{BASE}/projects/{project}/zones/{zone}"
        machine = body["machineType"].rsplit("/", 1)[-1]
        return {
            **body,
            "kind": "compute#instance",
            "id": str(secrets.randbits(63)),
            "creationTimestamp": now(),
            "status": "RUNNING",
            "zone": zone_url,
            "machineType": f"{zone_url}/machineTypes/{machine}",
            "selfLink": f"{zone_url}/instances/{body['name']}",
            "labels": body.get("labels", {}),
        }

    def _list(self, project: str, zone: str, query: dict[str, str]) -> Any:
        with self._lock:
            nodes = [n for n in self._nodes.values() if _in(n.resource, project, zone)]
            for node in nodes:
                node.sync()
            items = [n.resource for n in nodes if matches(n.resource, query)]
        return page("compute#instanceList", project, zone, items, query)

    def _get(self, project: str, zone: str, name: str) -> Any:
        with self._lock:
            node = self._find(project, zone, name)
            node.sync()
            return node.resource

    def _delete(self, project: str, zone: str, name: str) -> Any:
        with self._lock:
            node = self._find(project, zone, name)
            node.resource["status"] = "STOPPING"
        node.stop(self.stop_grace_s)
        with self._lock:
            self._nodes.pop(name, None)
            return self._operation(node.resource, "delete")

    def _guest_attributes(
        self, project: str, zone: str, name: str, query: dict[str, str]
    ) -> Any:
        with self._lock:
            node = self._find(project, zone, name)
            node.sync()
            prefix = query.get("queryPath", "")
            items = [
                {"namespace": path.split("/")[0], "key": path.split("/")[1], "value": v}
                for path, v in node.attributes.items()
                if path.startswith(prefix)
            ]
        if not items:
            raise ApiError(404, "notFound", f"No guest attributes under {prefix!r}")
        return {
            "kind": "compute#guestAttributes",
            "queryPath": prefix,
            "queryValue": {"items": items},
            "selfLink": f"{node.resource['selfLink']}/getGuestAttributes",
        }

    def _operations_call(
        self,
        method: str,
        project: str,
        zone: str,
        name: str | None,
        query: dict[str, str],
    ) -> Any:
        with self._lock:
            if name is None:
                items = [
                    op
                    for op in self._operations.values()
                    if op["zone"].endswith(f"/{project}/zones/{zone}")
                    and matches(op, query)
                ]
                return page("compute#operationList", project, zone, items, query)
            if name not in self._operations:
                raise ApiError(404, "notFound", f"The operation {name!r} was not found")
            return self._operations[name]

    def _operation(
        self, target: dict[str, Any], kind: str, failure: Any = None
    ) -> dict[str, Any]:
        name = f"operation-{int(time.time() * 1000)}-{secrets.token_hex(8)}"
        op: dict[str, Any] = {
            "kind": "compute#operation",
            "id": str(secrets.randbits(63)),
            "name": name,
            "zone": target["zone"],
            "operationType": kind,
            "targetLink": target["selfLink"],
            "targetId": target["id"],
            "status": "DONE",
            "user": "fake-user@example.com",
            "progress": 100,
            "insertTime": now(),
            "startTime": now(),
            "endTime": now(),
            "selfLink": f"{target['zone']}/operations/{name}",
        }
        if failure is not None:
            op.update(failure.operation_fields(target))
        self._operations[name] = op
        if not self.operations_done:
            return {**op, "status": "RUNNING", "progress": 0}
        return op

    def _find(self, project: str, zone: str, name: str) -> FakeNode:
        node = self._nodes.get(name)
        if node is None or not _in(node.resource, project, zone):
            raise ApiError(
                404,
                "notFound",
                f"The resource 'projects/{project}/zones/{zone}/instances/{name}'"
                " was not found",
            )
        return node


def _in(resource: dict[str, Any], project: str, zone: str) -> bool:
    return bool(resource["zone"].endswith(f"/projects/{project}/zones/{zone}"))


def _of(resource: dict[str, Any], project: str) -> bool:
    return f"/projects/{project}/zones/" in resource["zone"]


def _model(body: dict[str, Any] | None) -> str:
    scheduling = (body or {}).get("scheduling", {})
    return str(scheduling.get("provisioningModel", "STANDARD"))
