"""Foreign land for sea-neutral licences: every bundled country a licence does not allow.

Export control asks whether a chip is in a country it must not be in; open sea is no such
country. A sea-neutral licence therefore compares the grown sound region with the *land* of
every other country, each grown by the territorial sea (12 nautical miles, the widest a coastal
state may claim under UNCLOS art. 3) plus that country's own border drawing error, instead of
asking the region to lie inside the allowed countries. See docs/geo.md.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geo.regions import Region, country, country_codes

NAUTICAL_MILE_KM = 1.852
TERRITORIAL_SEA_KM = 12.0 * NAUTICAL_MILE_KM  # 22.224 km


@dataclass(frozen=True, slots=True)
class ForeignLand:
    """Polygons of land a licence does not allow, each with the distance (km) the sound region
    must keep from it: territorial sea plus its country's border error.

    `tree` indexes `parts`; `margin_km[i]` and `country[i]` (alpha-3) belong to `parts[i]`.
    """

    parts: npt.NDArray[np.object_]
    margin_km: npt.NDArray[np.float64]
    country: npt.NDArray[np.str_]
    tree: shapely.STRtree

    @property
    def max_margin_km(self) -> float:
        return float(self.margin_km.max()) if len(self.margin_km) else 0.0

    def candidates(self, area: BaseGeometry) -> npt.NDArray[np.intp]:
        """Parts whose bounding boxes meet `area`'s: a superset of the parts `area` meets."""
        found: npt.NDArray[np.intp] = self.tree.query(area)
        return found

    def hits_xy(
        self, lon_deg: npt.NDArray[np.float64], lat_deg: npt.NDArray[np.float64]
    ) -> npt.NDArray[np.bool_]:
        """Per point: does it lie on (the drawn) foreign land?"""
        hits = np.zeros(len(lon_deg), dtype=bool)
        if len(lon_deg) == 0 or len(self.parts) == 0:
            return hits
        points, _ = self.tree.query(shapely.points(lon_deg, lat_deg), predicate="intersects")
        hits[points] = True
        return hits


def _parts_of(region: Region) -> list[BaseGeometry]:
    return [p for p in shapely.get_parts(region.geometry) if not p.is_empty]


def _build(regions: Sequence[Region], carve: BaseGeometry | None) -> ForeignLand:
    parts: list[BaseGeometry] = []
    margins: list[float] = []
    owners: list[str] = []
    for region in regions:
        margin_km = TERRITORIAL_SEA_KM + region.boundary_error_km
        for drawn in _parts_of(region):
            land = drawn
            if carve is not None and drawn.intersects(carve):
                # Land inside a custom allowed region is allowed land, whoever's it is.
                land = drawn.difference(carve)
                if land.is_empty or land.area <= 0.0:
                    continue
            for piece in shapely.get_parts(land):
                parts.append(piece)
                margins.append(margin_km)
                owners.append(region.name)
    geoms = np.array(parts, dtype=object)
    shapely.prepare(geoms)
    return ForeignLand(
        geoms, np.array(margins, dtype=np.float64), np.array(owners), shapely.STRtree(geoms)
    )


@functools.cache
def _foreign_of_countries(allowed_codes: frozenset[str]) -> ForeignLand:
    return _build([country(c) for c in country_codes() if c not in allowed_codes], None)


def foreign_land(allowed: Sequence[Region]) -> ForeignLand:
    """Land of every bundled country not among `allowed`, minus any custom allowed region.

    Licences of bundled countries only (the usual case) share one cached index per set of
    countries; a custom GeoJSON region is carved out of the land it covers.
    """
    bundled = {r.name for r in allowed if _is_bundled(r)}
    custom = [r.geometry for r in allowed if not _is_bundled(r)]
    if not custom:
        return _foreign_of_countries(frozenset(bundled))
    carve = shapely.union_all(custom)
    shapely.prepare(carve)
    return _build([country(c) for c in country_codes() if c not in bundled], carve)


@functools.cache
def all_land() -> BaseGeometry:
    """Every bundled country in one prepared geometry (built once, ~2 s): the fast test for
    whether a point lies on any land."""
    land = shapely.union_all([country(c).geometry for c in country_codes()])
    shapely.prepare(land)
    return land


def _is_bundled(region: Region) -> bool:
    if region.name not in _codes():
        return False
    bundled = country(region.name)
    return bundled is region or bundled == region


@functools.cache
def _codes() -> frozenset[str]:
    return frozenset(country_codes())
