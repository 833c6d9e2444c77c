"""How much room a chip's licence leaves the speed of light: geometry, before any timing.

A sea-neutral licence is `verified` only when the sound region, grown by the territorial sea
plus the border error, stays clear of every other country's land (geo/sea.py). So however good
the landmarks, the region around a chip's declared site can be at most as wide as the distance
to the nearest foreign land minus that margin. A landmark in the chip's own data centre bounds
the region by a disc of radius RTT/2 x c, so that width is also the largest RTT such a landmark
may measure. Where it is negative no RTT can prove the licence (a foreign coast within 12 nmi
plus the border error): the chip stays `inconclusive` for geometry, not for timing.

The nearest point is found in degrees and measured on the ellipsoid: a figure to explain the
demo's results, not a proof (the verifier's own rule decides).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import shapely
import shapely.ops

from geo.constants import C_VACUUM_KM_PER_S
from geo.geodesy import distance_km
from geo.licence import licence_from_json

_SEARCH_DEG = 10.0  # foreign land farther than this (~1,100 km) never limits a demo chip


@dataclass(frozen=True, slots=True)
class ProofBudget:
    nearest_country: str
    foreign_land_km: float
    margin_km: float

    @property
    def max_radius_km(self) -> float:
        return self.foreign_land_km - self.margin_km

    @property
    def max_colocated_rtt_ms(self) -> float | None:
        """The largest RTT a landmark at the site may measure and still leave room; None: no
        RTT can."""
        if self.max_radius_km <= 0.0:
            return None
        return 2.0 * self.max_radius_km / C_VACUUM_KM_PER_S * 1000.0

    def to_json(self) -> dict[str, Any]:
        rtt = self.max_colocated_rtt_ms
        return {
            "nearest_foreign_country": self.nearest_country,
            "foreign_land_km": round(self.foreign_land_km, 1),
            "margin_km": round(self.margin_km, 1),
            "max_sound_radius_km": round(self.max_radius_km, 1),
            "max_colocated_rtt_ms": None if rtt is None else round(rtt, 3),
        }


def proof_budget(licence_json: dict[str, Any]) -> ProofBudget | None:
    """None for a licence without a declared site or without foreign land near it."""
    licence = licence_from_json(licence_json)
    site, foreign = licence.site, licence.foreign
    if site is None or foreign is None:
        return None
    point = shapely.Point(site.lon_deg, site.lat_deg)
    best: ProofBudget | None = None
    for index in foreign.candidates(point.buffer(_SEARCH_DEG)):
        nearest = shapely.ops.nearest_points(foreign.parts[index], point)[0]
        land_km = distance_km(site.lat_deg, site.lon_deg, nearest.y, nearest.x)
        margin_km = float(foreign.margin_km[index])
        if best is None or land_km - margin_km < best.max_radius_km:
            best = ProofBudget(str(foreign.country[index]), land_km, margin_km)
    return best
