"""The inside fraction: share of a region's area allowed and not prohibited (informational)."""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geo.geodesy import (
    FloatArray,
)
from geo.licence import Licence
from geo.region_measures import area_km2, area_km2_many

logger = logging.getLogger(__name__)

BoolArray = npt.NDArray[np.bool_]


def intersection_near(region: BaseGeometry, area: BaseGeometry) -> BaseGeometry:
    """region ∩ area, exactly, overlaying only the part of `area` in region's bounding box.

    Clipping is a linear scan, far cheaper than noding a whole country's border; GEOS does not
    promise a valid clip for every input, so on an overlay error the full overlay is used.
    """
    nearby = shapely.clip_by_rect(area, *region.bounds)
    try:
        return region.intersection(nearby)
    except shapely.errors.GEOSException:
        logger.debug("overlay with a clipped region failed; using the full region")
        return region.intersection(area)


def compliant_fraction(
    region: BaseGeometry, licence: Licence, region_km2: float, near_prohibited: bool
) -> float:
    """Share of the region's area allowed and not prohibited: sampled (`sampled_fractions`),
    or by exact overlay where too few sample points fall inside the region."""
    if region_km2 <= 0.0:
        return 0.0
    sampled = float(
        sampled_fractions(np.array([region], dtype=object), licence, np.array([near_prohibited]))[0]
    )
    if not math.isnan(sampled):
        return sampled
    return _overlay_fraction(region, licence, region_km2, near_prohibited)


def _overlay_fraction(
    region: BaseGeometry, licence: Licence, region_km2: float, near_prohibited: bool
) -> float:
    compliant = region
    # Overlays cost time in the size of both operands; a prohibited region already cleared by
    # the box test (another continent) is not overlaid at all.
    if licence.allowed_union is not None:
        compliant = intersection_near(compliant, licence.allowed_union)
    prohibited = licence.prohibited_union
    if near_prohibited and prohibited is not None and prohibited.intersects(compliant):
        compliant = compliant.difference(prohibited)
    return min(max(area_km2(compliant) / region_km2, 0.0), 1.0)


# The inside fraction is informational (no verdict depends on it), so it is estimated from a
# fixed lattice of FRACTION_SAMPLES points over each region's lon/lat bounding box (a
# Fibonacci lattice: row i/N, column i/golden ratio), weighted by cos(lat) for area and tested
# with vectorised point-in-polygon calls: about a third of the cost of the exact overlay
# (docs/geo.md). With n lattice points inside the region the error is below 1/sqrt(n) (the
# tests check it against the exact overlay); regions filling less than
# FRACTION_MIN_INSIDE / FRACTION_SAMPLES of their box (split at +-180 deg, thin slivers) get
# the exact overlay instead, so the error never exceeds FRACTION_ERROR_BOUND.
FRACTION_SAMPLES = 256
FRACTION_MIN_INSIDE = 128
FRACTION_ERROR_BOUND = 1.0 / math.sqrt(FRACTION_MIN_INSIDE)
_LATTICE_ROW = (np.arange(FRACTION_SAMPLES) + 0.5) / FRACTION_SAMPLES
_LATTICE_COLUMN = np.mod(np.arange(FRACTION_SAMPLES) * ((math.sqrt(5.0) - 1.0) / 2.0) + 0.5, 1.0)


def sampled_fractions(
    geoms: npt.NDArray[np.object_], licence: Licence, near: BoolArray
) -> FloatArray:
    """The lattice estimate of the inside fraction of each region; NaN where fewer than
    FRACTION_MIN_INSIDE lattice points fall inside it (the caller overlays exactly)."""
    min_lon, min_lat, max_lon, max_lat = shapely.bounds(geoms).T
    lon = (min_lon[:, None] + _LATTICE_ROW * (max_lon - min_lon)[:, None]).ravel()
    lat = (min_lat[:, None] + _LATTICE_COLUMN * (max_lat - min_lat)[:, None]).ravel()
    owner = np.repeat(np.arange(len(geoms)), FRACTION_SAMPLES)
    inside = shapely.contains_xy(np.repeat(geoms, FRACTION_SAMPLES), lon, lat)
    lon, lat, owner = lon[inside], lat[inside], owner[inside]
    ok = np.ones(len(lon), dtype=bool)
    if licence.allowed_union is not None:
        ok = shapely.contains_xy(licence.allowed_union, lon, lat)
    prohibited = licence.prohibited_union
    if prohibited is not None:
        test = ok & near[owner]
        ok[test] = ~shapely.contains_xy(prohibited, lon[test], lat[test])
    weight = np.cos(np.radians(lat))
    count = np.bincount(owner, minlength=len(geoms))
    total = np.bincount(owner, weights=weight, minlength=len(geoms))
    good = np.bincount(owner, weights=np.where(ok, weight, 0.0), minlength=len(geoms))
    enough = count >= FRACTION_MIN_INSIDE
    fractions = np.full(len(geoms), np.nan)
    fractions[enough] = np.clip(good[enough] / total[enough], 0.0, 1.0)
    return fractions


def compliant_fractions(
    chosen: Sequence[int],
    geoms: npt.NDArray[np.object_],
    licence: Licence,
    areas_km2: FloatArray,
    near: BoolArray,
) -> dict[int, float]:
    """`compliant_fraction` for the chosen regions: one lattice estimate for all of them,
    the allowed overlay at once for those the lattice leaves open."""
    index = [i for i in chosen if areas_km2[i] > 0.0]
    fractions = {i: 0.0 for i in chosen}
    if not index:
        return fractions
    sampled = sampled_fractions(geoms[index], licence, near[index])
    for i, fraction in zip(index, sampled.tolist(), strict=True):
        fractions[i] = fraction
    index = [i for i, fraction in zip(index, sampled.tolist(), strict=True) if math.isnan(fraction)]
    if not index:
        return fractions
    regions = geoms[index]
    compliant = regions
    allowed = licence.allowed_union
    if allowed is not None:
        nearby = np.array([shapely.clip_by_rect(allowed, *r.bounds) for r in regions], dtype=object)
        try:
            compliant = shapely.intersection(regions, nearby)
        except shapely.errors.GEOSException:
            compliant = np.array([intersection_near(r, allowed) for r in regions], dtype=object)
    prohibited = licence.prohibited_union
    if prohibited is not None:
        for k, i in enumerate(index):
            if near[i] and prohibited.intersects(compliant[k]):
                compliant[k] = compliant[k].difference(prohibited)
    areas = area_km2_many(list(compliant))
    for k, i in enumerate(index):
        fractions[i] = min(max(float(areas[k]) / float(areas_km2[i]), 0.0), 1.0)
    return fractions
