"""The few Compute Engine calls the provisioner makes, and their errors.

The Google client is imported on first use, so ``sparkles --help`` does not
pay for it, and a missing ``[gcp]`` extra is reported with the line to
install it. It talks REST. ``SPARKLES_COMPUTE_ENDPOINT`` (for example
``http://127.0.0.1:8080``) points it at another server, such as the tests'
fake, with anonymous credentials.

Operations are waited for with ``zoneOperations.wait`` on the same endpoint
rather than with the client library's own polling, which always goes to
the public endpoint. Every Google error is translated here into a
:class:`~sparkles_core.errors.ClusterError` of one line that says what to do.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sparkles_core.errors import BackendError, ClusterError

if TYPE_CHECKING:
    from google.cloud import compute_v1

__all__ = ["ENDPOINT_ENV", "ComputeAPI", "InstanceState"]

logger = logging.getLogger(__name__)

ENDPOINT_ENV = "SPARKLES_COMPUTE_ENDPOINT"
INSTALL_HINT = "pip install 'snakemake-executor-plugin-sparkles[gcp]'"
PREEMPTED_OPERATION = "compute.instances.preempted"
# Each call is a small request; a minute means the service is in trouble.
CALL_TIMEOUT_S = 60.0
# Creating or deleting an instance takes seconds to a few minutes.
OPERATION_TIMEOUT_S = 600.0

_CAPACITY_CODES = ("ZONE_RESOURCE_POOL_EXHAUSTED", "RESOURCE_POOL_EXHAUSTED")


@dataclass(frozen=True)
class InstanceState:
    """What a listing says about one instance."""

    name: str
    status: str
    spot: bool


class ComputeAPI:
    """Instances and zone operations of one project and zone."""

    def __init__(self, project: str, zone: str, cluster_url: str) -> None:
        self.project, self.zone, self._url = project, zone, cluster_url
        self._clients: tuple[Any, Any] | None = None

    def insert(self, body: Mapping[str, Any]) -> compute_v1.Operation:
        """Start creating an instance; return the operation."""
        instances, _ = self._open()
        from google.cloud import compute_v1

        resource = compute_v1.Instance.from_json(json.dumps(body))
        logger.debug("Compute: insert %s in %s", body["name"], self.zone)
        with self._calling(f"Creating instance {body['name']!r}"):
            op: compute_v1.Operation = instances.insert_unary(
                project=self.project,
                zone=self.zone,
                instance_resource=resource,
                timeout=CALL_TIMEOUT_S,
            )
        return op

    def delete(self, name: str) -> compute_v1.Operation | None:
        """Start deleting an instance; return the operation, None if gone."""
        instances, _ = self._open()
        from google.api_core import exceptions

        logger.debug("Compute: delete %s", name)
        try:
            with self._calling(f"Deleting instance {name!r}", exceptions.NotFound):
                op: compute_v1.Operation = instances.delete_unary(
                    project=self.project,
                    zone=self.zone,
                    instance=name,
                    timeout=CALL_TIMEOUT_S,
                )
        except exceptions.NotFound:
            return None
        return op

    def wait(self, op: compute_v1.Operation, action: str) -> None:
        """Wait for the operation to finish; raise ClusterError if it failed."""
        _, operations = self._open()
        from google.cloud import compute_v1

        deadline = time.monotonic() + OPERATION_TIMEOUT_S
        while op.status != compute_v1.Operation.Status.DONE:
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"{action}: still running after {OPERATION_TIMEOUT_S:g} s; "
                    f"check operation {op.name!r} in the Cloud console."
                )
            with self._calling(action):
                op = operations.wait(
                    project=self.project,
                    zone=self.zone,
                    operation=op.name,
                    timeout=CALL_TIMEOUT_S,
                )
        if op.error.errors:
            codes = [error.code for error in op.error.errors]
            message = "; ".join(error.message for error in op.error.errors)
            raise ClusterError(self._explain(action, codes, message, op_error=True))

    def list_instances(self, labels: Mapping[str, str]) -> list[InstanceState]:
        """Return the instances that carry all of ``labels``."""
        instances, _ = self._open()
        from google.cloud import compute_v1

        query = " AND ".join(
            f'(labels.{key} = "{value}")' for key, value in sorted(labels.items())
        )
        request = compute_v1.ListInstancesRequest(
            project=self.project, zone=self.zone, filter=query
        )
        logger.debug("Compute: list instances where %s", query)
        with self._calling("Listing instances"):
            return [
                InstanceState(
                    name=item.name,
                    status=item.status,
                    spot=item.scheduling.provisioning_model == "SPOT",
                )
                for item in instances.list(request=request, timeout=CALL_TIMEOUT_S)
            ]

    def exit_status(self, name: str) -> str | None:
        """Return the exit status the node's start-up script recorded, if any."""
        instances, _ = self._open()
        from google.api_core import exceptions
        from google.cloud import compute_v1

        namespace, key = "sparkles", "exit-status"
        request = compute_v1.GetGuestAttributesInstanceRequest(
            project=self.project,
            zone=self.zone,
            instance=name,
            query_path=f"{namespace}/",
        )
        try:
            with self._calling(f"Reading {name!r}", exceptions.NotFound):
                found = instances.get_guest_attributes(
                    request=request, timeout=CALL_TIMEOUT_S
                )
        except exceptions.NotFound:
            return None
        for entry in found.query_value.items:
            if entry.namespace == namespace and entry.key == key:
                return str(entry.value)
        return None

    def preempted(self) -> set[str]:
        """Return the names of the zone's instances that were preempted."""
        _, operations = self._open()
        from google.cloud import compute_v1

        request = compute_v1.ListZoneOperationsRequest(
            project=self.project,
            zone=self.zone,
            filter=f'operationType = "{PREEMPTED_OPERATION}"',
        )
        with self._calling("Listing preemptions"):
            return {
                op.target_link.rsplit("/", 1)[-1]
                for op in operations.list(request=request, timeout=CALL_TIMEOUT_S)
            }

    def _open(self) -> tuple[Any, Any]:
        """Return the instances and zone operations clients, made once."""
        if self._clients is None:
            self._clients = self._connect()
        return self._clients

    def _connect(self) -> tuple[Any, Any]:
        try:
            from google.cloud import compute_v1
        except ImportError as exc:
            raise BackendError(
                f"The cluster {self._url!r} needs the Google Cloud clients; "
                f"run: {INSTALL_HINT}",
                self._url,
            ) from exc
        options: dict[str, Any] = {"transport": "rest"}
        endpoint = os.environ.get(ENDPOINT_ENV, "").strip()
        if endpoint:
            from google.api_core.client_options import ClientOptions
            from google.auth.credentials import AnonymousCredentials

            logger.info("Compute: using the endpoint %s", endpoint)
            options["client_options"] = ClientOptions(api_endpoint=endpoint)
            options["credentials"] = AnonymousCredentials()  # type: ignore[no-untyped-call]
        with self._calling("Connecting to Compute Engine"):
            return (
                compute_v1.InstancesClient(**options),
                compute_v1.ZoneOperationsClient(**options),
            )

    @contextlib.contextmanager
    def _calling(self, action: str, *passing: type[BaseException]) -> Iterator[None]:
        """Translate Google and transport errors into ClusterError."""
        from google.api_core import exceptions
        from google.auth import exceptions as auth_exceptions
        from requests import RequestException

        try:
            yield
        except passing:
            raise
        except exceptions.GoogleAPICallError as exc:
            codes = [str(error.get("reason", "")) for error in _details(exc)]
            message = exc.message or str(exc)
            raise ClusterError(
                self._explain(action, codes, message, status=exc.code)
            ) from exc
        except auth_exceptions.DefaultCredentialsError as exc:
            raise ClusterError(
                f"{action}: no Google credentials found; run 'gcloud auth "
                "application-default login' or set GOOGLE_APPLICATION_CREDENTIALS."
            ) from exc
        except (auth_exceptions.GoogleAuthError, RequestException) as exc:
            raise ClusterError(
                f"{action}: cannot reach Compute Engine ({_one_line(str(exc))}); "
                f"check the network and {ENDPOINT_ENV} if set."
            ) from exc

    def _explain(
        self,
        action: str,
        codes: list[str],
        message: str,
        status: int | None = None,
        op_error: bool = False,
    ) -> str:
        """Return one line saying what failed and what to do about it."""
        text = _one_line(message).rstrip(".")
        hint = self._hint(codes, text, status, op_error)
        return f"{action} failed ({text}){': ' + hint if hint else '.'}"

    def _hint(
        self, codes: list[str], text: str, status: int | None, op_error: bool
    ) -> str | None:
        """Return what the user can do about an error, if we know."""
        lowered = " ".join([*codes, text]).lower()
        if "quota" in lowered:
            return (
                f"the Compute Engine quota of project {self.project!r} is used "
                "up; request more (console: IAM & Admin > Quotas) or ask for "
                "fewer nodes."
            )
        if any(code.startswith(_CAPACITY_CODES) for code in codes):
            return (
                f"zone {self.zone!r} has no capacity left for this machine "
                "type; try again later, or another zone in the cluster URL."
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
                f"grant the account roles/compute.instanceAdmin.v1 and "
                f"roles/iam.serviceAccountUser in project {self.project!r}, as "
                "'sparkles setup' shows."
            )
        if status == 429:
            return "the API rate limit was reached; wait a minute and try again."
        if status == 404 and not op_error:
            return f"check the project and zone of the cluster URL {self._url!r}."
        return None


def _details(exc: Any) -> list[Mapping[str, Any]]:
    """Return the error entries of an API error response, if any."""
    entries = getattr(exc, "errors", None) or []
    return [entry for entry in entries if isinstance(entry, Mapping)]


def _one_line(text: str) -> str:
    return " ".join(text.split())
