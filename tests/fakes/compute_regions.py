"""The regions and zones the fake Compute API knows, as the real API shows them.

The table copies where zones really exist: us-east1 and europe-west1 have no
zone ``a``, so code that guesses ``REGION-a`` fails here as it would on
Google. A call naming a zone or region outside the table gets the real
API's 404.
"""

from __future__ import annotations

import zlib
from typing import Any

from tests.fakes.compute_errors import ApiError

__all__ = ["BASE", "REGIONS", "check_zone", "region_resource", "scoped_lists"]

BASE = "https://www.googleapis.com/compute/v1"

REGIONS: dict[str, tuple[str, ...]] = {
    "us-central1": ("a", "b", "c", "f"),
    "us-east1": ("b", "c", "d"),
    "us-east4": ("a", "b", "c"),
    "us-west1": ("a", "b", "c"),
    "europe-west1": ("b", "c", "d"),
    "europe-west4": ("a", "b", "c"),
    "asia-northeast1": ("a", "b", "c"),
}


def _zones() -> list[str]:
    return [f"{region}-{z}" for region, zones in REGIONS.items() for z in zones]


def check_zone(project: str, zone: str) -> None:
    """Raise the API's 404 for a zone that does not exist."""
    if zone not in _zones():
        raise ApiError(
            404,
            "notFound",
            f"The resource 'projects/{project}/zones/{zone}' was not found",
        )


def region_resource(project: str, region: str) -> dict[str, Any]:
    """Return ``regions.get`` for the region, or raise the API's 404."""
    if region not in REGIONS:
        raise ApiError(
            404,
            "notFound",
            f"The resource 'projects/{project}/regions/{region}' was not found",
        )
    link = f"{BASE}/projects/{project}"
    return {
        "kind": "compute#region",
        "id": str(zlib.crc32(region.encode())),
        "creationTimestamp": "1969-12-31T16:00:00.000-08:00",
        "name": region,
        "description": region,
        "status": "UP",
        "zones": [f"{link}/zones/{region}-{z}" for z in REGIONS[region]],
        "quotas": [],
        "selfLink": f"{link}/regions/{region}",
        "supportsPzs": False,
    }


def scoped_lists(items: list[dict[str, Any]], field: str) -> dict[str, Any]:
    """Return an aggregated list's ``items``: each zone's resources, or a warning."""
    scopes: dict[str, Any] = {}
    for zone in _zones():
        mine = [item for item in items if item["zone"].endswith(f"/zones/{zone}")]
        if mine:
            scopes[f"zones/{zone}"] = {field: mine}
        else:
            scopes[f"zones/{zone}"] = {
                "warning": {
                    "code": "NO_RESULTS_ON_PAGE",
                    "message": f"There are no results for scope 'zones/{zone}' "
                    "on this page.",
                    "data": [{"key": "scope", "value": f"zones/{zone}"}],
                }
            }
    return scopes
