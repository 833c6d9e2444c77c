"""Verdicts: measurements + licence (+ calibration) -> an Assessment.

Semantics (see docs/geo.md): the sound region is grown by the licence tolerance plus the
regions' drawing error before any comparison, which makes `verified` harder and `violation`
harder (the grown region must miss the allowed area entirely, or fit inside a prohibited one).
`verified` depends on the licence's sea rule:

* sea-neutral (the default): the grown region touches the allowed area, and keeps clear of the
  land of every other country grown by its territorial sea and border error (`geo.sea`) and of
  prohibited areas grown by the territorial sea as well;
* sea excluded (strict): the grown region fits inside the allowed area and stays clear of
  prohibited areas.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geo.assessment import Verdict
from geo.constants import (
    KM_PER_DEG_LAT_MIN,
    KM_PER_DEG_LON_EQUATOR_MAX,
)
from geo.geodesy import (
    FloatArray,
)
from geo.grow import (
    BOX_SLACK,
    BUFFER_CIRCUMSCRIBE,
    MIN_BUFFER_DEG,
    POLAR_BAND_LAT_DEG,
    grow,
    grown_box,
)
from geo.inside_fraction import compliant_fraction, compliant_fractions
from geo.licence import Licence, Sea
from geo.region_measures import area_km2
from geo.verdict_sea import (
    on_foreign_land,
    prohibited_reach_km,
    verified_at_sea,
)

BoolArray = npt.NDArray[np.bool_]


def _near_prohibited(region: BaseGeometry, licence: Licence) -> bool:
    """False when a box around the grown region misses every prohibited region (then the
    region is clear of them without growing it); True when it may not."""
    prohibited = licence.prohibited_union
    if prohibited is None:
        return False
    box = grown_box(region, prohibited_reach_km(licence))
    return box is None or bool(prohibited.intersects(box))


def _inconclusive_by_points(region: BaseGeometry, licence: Licence, near_prohibited: bool) -> bool:
    """True when points of the region alone prove `_judge_grown` would say inconclusive.

    The region's vertices are points of G = grow(region, m) for any margin m >= 0, so a
    vertex outside an area proves G is not covered by it and a vertex in an area proves G
    meets it: exactly the facts that rule out `verified` and `violation`. The answer is
    therefore the one growing the region gives, at the cost of one point-in-polygon call per
    area on the prepared licence geometry. False means "not decided", never a verdict.
    """
    xy = shapely.get_coordinates(region)
    allowed, prohibited = licence.allowed_union, licence.prohibited_union
    meets_allowed, leaves_allowed = True, False  # no allowed regions: allowed everywhere
    if allowed is not None:
        in_allowed = shapely.intersects_xy(allowed, xy[:, 0], xy[:, 1])
        meets_allowed, leaves_allowed = bool(in_allowed.any()), not bool(in_allowed.all())
    meets_prohibited, leaves_prohibited = False, True
    if near_prohibited and prohibited is not None:
        hits = shapely.intersects_xy(prohibited, xy[:, 0], xy[:, 1])
        meets_prohibited, leaves_prohibited = bool(hits.any()), not bool(hits.all())
    not_verified = leaves_allowed or meets_prohibited
    if licence.foreign is not None:
        # Sea-neutral: the region may also be verified at sea, unless a vertex lies on foreign
        # land (then the grown region meets it).
        on_foreign = bool(on_foreign_land(xy, in_allowed).any())
        not_verified = meets_prohibited or (leaves_allowed and on_foreign)
    not_violation = meets_allowed and leaves_prohibited
    return not_verified and not_violation


def _judge_grown(region: BaseGeometry, licence: Licence, near_prohibited: bool) -> Verdict:
    """The verdict by definition: grow the region by the margins and compare.

    Sea-neutral licences add a second way to `verified` (`verified_at_sea`); with no allowed
    area the strict way (clear of prohibited land only) is replaced by it, so that the
    prohibited countries' territorial seas count too. `violation` is the same for both."""
    strict = _judge_grown_strict(region, licence, near_prohibited)
    if licence.sea is Sea.EXCLUDED or strict is Verdict.VIOLATION:
        return strict
    if strict is Verdict.VERIFIED and licence.allowed:
        return strict
    if verified_at_sea(region, licence, near_prohibited):
        return Verdict.VERIFIED
    return Verdict.INCONCLUSIVE


def _judge_grown_strict(region: BaseGeometry, licence: Licence, near_prohibited: bool) -> Verdict:
    """The strict verdict (sea excluded): the grown region inside the allowed area."""
    tolerance_km = float(licence.tolerance_km)
    allowed, prohibited = licence.allowed_union, licence.prohibited_union
    grown_for_allowed = grown_for_prohibited = region
    grown: dict[float, BaseGeometry] = {}  # both sides often need the same margin
    if allowed is not None:
        margin_km = tolerance_km + max(r.boundary_error_km for r in licence.allowed)
        grown_for_allowed = grown.setdefault(margin_km, grow(region, margin_km))
    if near_prohibited and prohibited is not None:
        margin_km = tolerance_km + max(r.boundary_error_km for r in licence.prohibited)
        if margin_km not in grown:
            grown[margin_km] = grow(region, margin_km)
        grown_for_prohibited = grown[margin_km]
    inside_allowed = allowed is None or allowed.covers(grown_for_allowed)
    clear = (
        not near_prohibited or prohibited is None or not prohibited.intersects(grown_for_prohibited)
    )
    if inside_allowed and clear:
        return Verdict.VERIFIED
    outside_allowed = allowed is not None and not allowed.intersects(grown_for_allowed)
    in_prohibited = (
        near_prohibited and prohibited is not None and prohibited.covers(grown_for_prohibited)
    )
    if outside_allowed or in_prohibited:
        return Verdict.VIOLATION
    return Verdict.INCONCLUSIVE


def judge(
    region: BaseGeometry, licence: Licence, region_km2: float | None = None
) -> tuple[Verdict, float]:
    """Verdict and inside fraction for a consistent sound region (see the module docstring).

    `region_km2` is `area_km2(region)` when the caller has it already. The usual
    `inconclusive` (region across a border) is recognised from the region's vertices without
    growing it (`_inconclusive_by_points`, same answer); everything else is decided by
    `_judge_grown`."""
    near_prohibited = _near_prohibited(region, licence)
    if _inconclusive_by_points(region, licence, near_prohibited):
        verdict = Verdict.INCONCLUSIVE
    else:
        verdict = _judge_grown(region, licence, near_prohibited)
    if verdict is Verdict.VERIFIED:
        return verdict, 1.0
    if verdict is Verdict.VIOLATION:
        return verdict, 0.0
    if region_km2 is None:
        region_km2 = area_km2(region)
    return verdict, compliant_fraction(region, licence, region_km2, near_prohibited)


def judge_many(
    regions: Sequence[BaseGeometry], licence: Licence, areas_km2: FloatArray
) -> list[tuple[Verdict, float]]:
    """`judge` for regions under one licence: the vertex test and the inside fraction's
    overlays for all regions at once; undecided regions are grown one by one."""
    geoms = np.array(regions, dtype=object)
    near = _near_prohibited_many(geoms, licence)
    xy, owner = shapely.get_coordinates(geoms, return_index=True)
    count = len(regions)
    allowed, prohibited = licence.allowed_union, licence.prohibited_union
    meets_allowed, leaves_allowed = np.ones(count, dtype=bool), np.zeros(count, dtype=bool)
    if allowed is not None:
        in_allowed = shapely.intersects_xy(allowed, xy[:, 0], xy[:, 1])
        meets_allowed = np.bincount(owner, weights=in_allowed, minlength=count) > 0
        leaves_allowed = np.bincount(owner, weights=~in_allowed, minlength=count) > 0
    meets_prohibited, leaves_prohibited = np.zeros(count, dtype=bool), np.ones(count, dtype=bool)
    if prohibited is not None and near.any():
        chosen = near[owner]
        hits = shapely.intersects_xy(prohibited, xy[chosen, 0], xy[chosen, 1])
        meets_prohibited = near & (np.bincount(owner[chosen], weights=hits, minlength=count) > 0)
        leaves_prohibited = ~near | (np.bincount(owner[chosen], weights=~hits, minlength=count) > 0)
    not_verified = leaves_allowed | meets_prohibited
    if licence.foreign is not None:  # sea-neutral: see `_inconclusive_by_points`
        hits = on_foreign_land(xy, in_allowed)
        on_foreign = np.bincount(owner, weights=hits, minlength=count) > 0
        not_verified = meets_prohibited | (leaves_allowed & on_foreign)
    by_points = not_verified & (meets_allowed & leaves_prohibited)
    verdicts = [
        Verdict.INCONCLUSIVE if decided else _judge_grown(region, licence, bool(close))
        for region, decided, close in zip(regions, by_points, near, strict=True)
    ]
    fractions = compliant_fractions(
        [i for i, v in enumerate(verdicts) if v is Verdict.INCONCLUSIVE],
        geoms,
        licence,
        areas_km2,
        near,
    )
    return [
        (v, 1.0 if v is Verdict.VERIFIED else 0.0 if v is Verdict.VIOLATION else fractions[i])
        for i, v in enumerate(verdicts)
    ]


def _near_prohibited_many(geoms: npt.NDArray[np.object_], licence: Licence) -> BoolArray:
    """`_near_prohibited` for many regions: the same boxes, tested in one call."""
    prohibited = licence.prohibited_union
    if prohibited is None:
        return np.zeros(len(geoms), dtype=bool)
    distance_km = max(prohibited_reach_km(licence), 0.0)
    min_lon, min_lat, max_lon, max_lat = shapely.bounds(geoms).T
    lat_step_deg = distance_km / KM_PER_DEG_LAT_MIN
    far_lat_deg = np.maximum(np.abs(min_lat), np.abs(max_lat)) + lat_step_deg
    polar = far_lat_deg >= POLAR_BAND_LAT_DEG
    with np.errstate(divide="ignore"):
        lon_step_deg = distance_km / (
            KM_PER_DEG_LON_EQUATOR_MAX * np.cos(np.radians(np.where(polar, 0.0, far_lat_deg)))
        )
    step_deg = (
        np.maximum(np.maximum(lat_step_deg, lon_step_deg) * BUFFER_CIRCUMSCRIBE, MIN_BUFFER_DEG)
        * BOX_SLACK
    )
    unboxed = polar | (min_lon - step_deg < -180.0) | (max_lon + step_deg > 180.0)
    near = unboxed.copy()
    boxed = ~unboxed
    if boxed.any():
        boxes = shapely.box(
            min_lon[boxed] - step_deg[boxed],
            min_lat[boxed] - step_deg[boxed],
            max_lon[boxed] + step_deg[boxed],
            max_lat[boxed] + step_deg[boxed],
        )
        near[boxed] = shapely.intersects(prohibited, boxes)
    return np.asarray(near, dtype=bool)
