"""The few Compute Engine calls the provisioner makes.

The Google client is imported on first use, so ``sparkles --help`` does not
pay for it, and a missing ``[gcp]`` extra is reported with the line to
install it. It talks REST, with the credentials it is given, else with
Application Default Credentials. ``SPARKLES_COMPUTE_ENDPOINT`` (for example
``http://127.0.0.1:8080``) points it at another server, such as the tests'
fake, with anonymous credentials.

One object serves every zone of a project: the instances of a cluster are
listed across zones in one aggregated call, and the other calls name their
zone. Operations are waited for with ``zoneOperations.wait`` on the same
endpoint rather than with the client library's own polling, which always
goes to the public endpoint. Errors become
:class:`~sparkles_core.cluster.gce_errors.ComputeError` (see there).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sparkles_core.cluster.gce_errors import ENDPOINT_ENV, ComputeError, Explainer
from sparkles_core.errors import BackendError

if TYPE_CHECKING:
    from google.cloud import compute_v1

__all__ = ["ENDPOINT_ENV", "ComputeAPI", "InstanceState"]

logger = logging.getLogger(__name__)

INSTALL_HINT = "pip install 'snakemake-executor-plugin-sparkles[gcp]'"
PREEMPTED_OPERATION = "compute.instances.preempted"
# Each call is a small request; a minute means the service is in trouble.
CALL_TIMEOUT_S = 60.0
# Creating or deleting an instance takes seconds to a few minutes.
OPERATION_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class InstanceState:
    """What a listing says about one instance."""

    name: str
    zone: str
    status: str
    spot: bool


@dataclass
class _Clients:
    """The REST clients, made on first need."""

    instances: Any
    operations: Any
    regions: Any


class ComputeAPI:
    """Instances and zone operations of one project."""

    def __init__(
        self, project: str, cluster_url: str, credentials: Any | None = None
    ) -> None:
        self.project, self._url = project, cluster_url
        self._credentials = credentials
        self._explainer = Explainer(project, cluster_url)
        self._clients: _Clients | None = None

    def zones_of(self, region: str) -> list[str]:
        """Return the names of the region's zones, as the API lists them."""
        clients = self._open()
        logger.debug("Compute: get region %s", region)
        with self._explainer.calling(f"Listing the zones of region {region!r}"):
            found = clients.regions.get(
                project=self.project, region=region, timeout=CALL_TIMEOUT_S
            )
        return sorted(str(link).rsplit("/", 1)[-1] for link in found.zones)

    def insert(self, zone: str, body: Mapping[str, Any]) -> compute_v1.Operation:
        """Start creating an instance in ``zone``; return the operation."""
        clients = self._open()
        from google.cloud import compute_v1

        resource = compute_v1.Instance.from_json(json.dumps(body))
        logger.debug("Compute: insert %s in %s", body["name"], zone)
        with self._explainer.calling(f"Creating instance {body['name']!r}", zone):
            op: compute_v1.Operation = clients.instances.insert_unary(
                project=self.project,
                zone=zone,
                instance_resource=resource,
                timeout=CALL_TIMEOUT_S,
            )
        return op

    def delete(self, zone: str, name: str) -> compute_v1.Operation | None:
        """Start deleting an instance; return the operation, None if gone."""
        clients = self._open()
        from google.api_core import exceptions

        logger.debug("Compute: delete %s in %s", name, zone)
        action = f"Deleting instance {name!r}"
        try:
            with self._explainer.calling(action, zone, exceptions.NotFound):
                op: compute_v1.Operation = clients.instances.delete_unary(
                    project=self.project,
                    zone=zone,
                    instance=name,
                    timeout=CALL_TIMEOUT_S,
                )
        except exceptions.NotFound:
            return None
        return op

    def wait(self, op: compute_v1.Operation, action: str) -> None:
        """Wait for the operation to finish; raise ComputeError if it failed."""
        clients = self._open()
        from google.cloud import compute_v1

        zone = op.zone.rsplit("/", 1)[-1]
        deadline = time.monotonic() + OPERATION_TIMEOUT_S
        while op.status != compute_v1.Operation.Status.DONE:
            if time.monotonic() > deadline:
                raise ComputeError(
                    f"{action}: still running after {OPERATION_TIMEOUT_S:g} s; "
                    f"check operation {op.name!r} in the Cloud console."
                )
            with self._explainer.calling(action, zone):
                op = clients.operations.wait(
                    project=self.project,
                    zone=zone,
                    operation=op.name,
                    timeout=CALL_TIMEOUT_S,
                )
        if op.error.errors:
            codes = [error.code for error in op.error.errors]
            message = "; ".join(error.message for error in op.error.errors)
            status = op.http_error_status_code or None
            raise self._explainer.error(action, zone, codes, message, status, True)

    def list_instances(self, labels: Mapping[str, str]) -> list[InstanceState]:
        """Return the instances, in any zone, that carry all of ``labels``."""
        clients = self._open()
        from google.cloud import compute_v1

        query = " AND ".join(
            f'(labels.{key} = "{value}")' for key, value in sorted(labels.items())
        )
        request = compute_v1.AggregatedListInstancesRequest(
            project=self.project, filter=query
        )
        logger.debug("Compute: list instances where %s", query)
        with self._explainer.calling("Listing instances"):
            return [
                InstanceState(
                    name=item.name,
                    zone=item.zone.rsplit("/", 1)[-1],
                    status=item.status,
                    spot=item.scheduling.provisioning_model == "SPOT",
                )
                for _, scoped in clients.instances.aggregated_list(
                    request=request, timeout=CALL_TIMEOUT_S
                )
                for item in scoped.instances
            ]

    def exit_status(self, zone: str, name: str) -> str | None:
        """Return the exit status the node's start-up script recorded, if any."""
        clients = self._open()
        from google.api_core import exceptions
        from google.cloud import compute_v1

        namespace, key = "sparkles", "exit-status"
        request = compute_v1.GetGuestAttributesInstanceRequest(
            project=self.project, zone=zone, instance=name, query_path=f"{namespace}/"
        )
        try:
            with self._explainer.calling(
                f"Reading {name!r}", zone, exceptions.NotFound
            ):
                found = clients.instances.get_guest_attributes(
                    request=request, timeout=CALL_TIMEOUT_S
                )
        except exceptions.NotFound:
            return None
        for entry in found.query_value.items:
            if entry.namespace == namespace and entry.key == key:
                return str(entry.value)
        return None

    def preempted(self, zone: str) -> set[str]:
        """Return the names of the zone's instances that were preempted."""
        clients = self._open()
        from google.cloud import compute_v1

        request = compute_v1.ListZoneOperationsRequest(
            project=self.project,
            zone=zone,
            filter=f'operationType = "{PREEMPTED_OPERATION}"',
        )
        with self._explainer.calling("Listing preemptions", zone):
            return {
                op.target_link.rsplit("/", 1)[-1]
                for op in clients.operations.list(
                    request=request, timeout=CALL_TIMEOUT_S
                )
            }

    def _open(self) -> _Clients:
        """Return the REST clients, made once."""
        if self._clients is None:
            self._clients = self._connect()
        return self._clients

    def _connect(self) -> _Clients:
        try:
            from google.cloud import compute_v1
        except ImportError as exc:
            raise BackendError(
                f"The cluster {self._url!r} needs the Google Cloud clients; "
                f"run: {INSTALL_HINT}",
                self._url,
            ) from exc
        options: dict[str, Any] = {
            "transport": "rest",
            "credentials": self._credentials,
        }
        endpoint = os.environ.get(ENDPOINT_ENV, "").strip()
        if endpoint:
            from google.api_core.client_options import ClientOptions
            from google.auth.credentials import AnonymousCredentials as Anonymous

            logger.info("Compute: using the endpoint %s", endpoint)
            options["client_options"] = ClientOptions(api_endpoint=endpoint)
            options["credentials"] = Anonymous()  # type: ignore[no-untyped-call]
        with self._explainer.calling("Connecting to Compute Engine"):
            return _Clients(
                compute_v1.InstancesClient(**options),
                compute_v1.ZoneOperationsClient(**options),
                compute_v1.RegionsClient(**options),
            )
