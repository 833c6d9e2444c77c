"""How fast a co-located landmark must answer for a chip site to be provable at all.

For each chip site: the largest round trip from landmarks in its own data centre at which the
simulator's fast path (its disc route, `sim.discs`) and geo's exact verdict (`geo.assess`, two
co-located landmarks) still say `verified`. No landmark placement can prove a site beyond its
exact limit, so a vendor learns which metros need faster co-located hardware, or cannot be
proven under a single-country licence at all (all of Singapore lies within Malaysia's land grown
by its territorial sea and border error). Found by bisection: a longer round trip only grows
the region, which never turns an unproven site into a proven one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from geo.assess import assess
from geo.assessment import Verdict
from geo.constants import SPHERE_DISTANCE_INFLATION
from geo.licence import Licence
from geo.measurement import LandmarkRtt
from geo.regions import country
from sim.discs import DiscVerdicts
from sim.fastpath import KM_PER_MS_RTT
from sim.sites import Site

MIN_RTT_MS = 0.001  # 1 µs: geo takes no round trip of 0
MAX_RTT_MS = 1.0  # beyond this a co-located landmark is no better than a metro one
_STEPS = 8  # bisection steps: 1 ms / 2^8 ~ 4 µs


@dataclass(frozen=True, slots=True)
class SiteLimit:
    site: Site
    fast_ms: float | None  # None: not provable even at MIN_RTT_MS
    exact_ms: float | None

    def to_json(self, planned_rtt_ms: float) -> dict[str, Any]:
        return {
            "metro": self.site.name,
            "iso3": self.site.iso3,
            "fast_max_colocated_rtt_ms": _rounded(self.fast_ms),
            "exact_max_colocated_rtt_ms": _rounded(self.exact_ms),
            "provable_at_planned_rtt": self.fast_ms is not None and self.fast_ms >= planned_rtt_ms,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _largest(holds: Callable[[float], bool]) -> float | None:
    """The largest RTT in [MIN_RTT_MS, MAX_RTT_MS] where `holds` (monotone: true, then
    false); None if it holds nowhere."""
    if not holds(MIN_RTT_MS):
        return None
    if holds(MAX_RTT_MS):
        return MAX_RTT_MS
    low, high = MIN_RTT_MS, MAX_RTT_MS
    for _ in range(_STEPS):
        middle = (low + high) / 2.0
        low, high = (middle, high) if holds(middle) else (low, middle)
    return low


def site_limit(site: Site, margin_km: float) -> SiteLimit:
    region = country(site.iso3)
    discs = DiscVerdicts(region)
    licence = Licence(allowed=(region,), prohibited=())

    def fast(rtt_ms: float) -> bool:
        radius_km = rtt_ms * KM_PER_MS_RTT * SPHERE_DISTANCE_INFLATION + margin_km
        return discs.inside(site.lat_deg, site.lon_deg) and discs.verified(
            site.lat_deg, site.lon_deg, radius_km
        )

    def exact(rtt_ms: float) -> bool:
        pair = [LandmarkRtt(f"co{i}", site.lat_deg, site.lon_deg, rtt_ms) for i in range(2)]
        return assess(pair, licence).verdict is Verdict.VERIFIED

    return SiteLimit(site, _largest(fast), _largest(exact))
