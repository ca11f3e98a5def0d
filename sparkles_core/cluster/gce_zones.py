"""Where a cluster's nodes go: the zones of a ``gce://`` URL, and their turns.

A cluster URL names its zones, ``gce://PROJECT/ZONE[,ZONE...]``, or a region
alone, ``gce://PROJECT/REGION``, whose zones are then listed through the
Compute API the first time a node is wanted (guessing ``REGION-a`` fails in
regions that have no zone ``a``, such as us-east1 and europe-west1).

New nodes are spread over the zones in turn, so one zone running out of spot
capacity costs a share of the nodes, not all of them. A zone that does not
offer the machine type is left out from then on.
"""

from __future__ import annotations

import itertools
import logging
import re
from collections.abc import Callable, Collection
from dataclasses import dataclass

from sparkles_core.errors import BackendError

__all__ = ["Placement", "ZoneTurns", "parse_cluster_url"]

logger = logging.getLogger(__name__)

_REGION = r"[a-z]+(?:-[a-z]+)*[0-9]+"
_URL = re.compile(
    rf"gce://(?P<project>[a-z][-a-z0-9.:]*)/"
    rf"(?:(?P<zones>{_REGION}-[a-z](?:,{_REGION}-[a-z])*)|(?P<region>{_REGION}))"
)


@dataclass(frozen=True)
class Placement:
    """The project and zones a cluster URL names."""

    project: str
    region: str
    # Empty: every zone of the region, as the API lists them.
    zones: tuple[str, ...] = ()


def parse_cluster_url(url: str) -> Placement:
    """Return where ``gce://PROJECT/ZONE[,ZONE...]`` or ``gce://PROJECT/REGION`` is."""
    match = _URL.fullmatch(url)
    if match is None:
        raise BackendError(
            f"Bad cluster URL {url!r}; expected gce://PROJECT/ZONE (several "
            "zones separated by commas) or gce://PROJECT/REGION, for example "
            "gce://my-project/us-central1-a.",
            url,
        )
    if match["region"]:
        return Placement(match["project"], match["region"])
    zones = tuple(dict.fromkeys(match["zones"].split(",")))
    regions = {zone.rsplit("-", 1)[0] for zone in zones}
    if len(regions) > 1:
        raise BackendError(
            f"Bad cluster URL {url!r}: its zones are in several regions "
            f"({', '.join(sorted(regions))}); name zones of one region.",
            url,
        )
    return Placement(match["project"], regions.pop(), zones)


class ZoneTurns:
    """The zones nodes may use, handed out in turn."""

    def __init__(
        self, placement: Placement, list_zones: Callable[[str], list[str]]
    ) -> None:
        self._placement, self._list_zones = placement, list_zones
        self._zones: list[str] | None = list(placement.zones) or None
        self._turn = itertools.count()

    def usable(self) -> list[str]:
        """Return the zones that may take nodes, listing the region's if needed."""
        if self._zones is None:
            region = self._placement.region
            self._zones = self._list_zones(region)
            if not self._zones:
                raise BackendError(
                    f"Region {region!r} of project {self._placement.project!r} "
                    "lists no zones; name the zones with the 'zones' key.",
                )
            logger.info("Region %s: zones %s", region, ", ".join(self._zones))
        return list(self._zones)

    def spread(self, count: int, skip: Collection[str] = ()) -> list[str]:
        """Return a zone for each of ``count`` new nodes, leaving out ``skip``."""
        zones = [zone for zone in self.usable() if zone not in skip]
        if not zones:
            return []
        return [zones[next(self._turn) % len(zones)] for _ in range(count)]

    def drop(self, zone: str) -> None:
        """Stop using a zone that cannot host the cluster's machines."""
        if self._zones is not None and zone in self._zones:
            self._zones.remove(zone)
            logger.warning("Zone %s: left out, it cannot host these nodes", zone)
