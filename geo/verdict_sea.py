"""The sea-neutral part of the verdict rule: territorial seas around prohibited and foreign land."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geo.geodesy import (
    FloatArray,
)
from geo.grow import grow, grown_box
from geo.licence import Licence, Sea
from geo.sea import TERRITORIAL_SEA_KM, ForeignLand, all_land

BoolArray = npt.NDArray[np.bool_]


def prohibited_margin_km(licence: Licence) -> float:
    """Growth before comparing with prohibited areas: tolerance plus their drawing error."""
    return float(licence.tolerance_km) + max(r.boundary_error_km for r in licence.prohibited)


def prohibited_reach_km(licence: Licence) -> float:
    """The widest growth any test against prohibited areas uses: a sea-neutral licence keeps
    the verified region a territorial sea away from them too."""
    sea_km = TERRITORIAL_SEA_KM if licence.sea is Sea.NEUTRAL else 0.0
    return prohibited_margin_km(licence) + sea_km


def on_foreign_land(xy: FloatArray, in_allowed: BoolArray) -> BoolArray:
    """Per vertex: on foreign land, i.e. on some country's land and not in the allowed area
    (foreign land is exactly that; one prepared test on the world's land is ~10x faster than
    asking the foreign parts' tree)."""
    return np.asarray(shapely.intersects_xy(all_land(), xy[:, 0], xy[:, 1]) & ~in_allowed)


def verified_at_sea(region: BaseGeometry, licence: Licence, near_prohibited: bool) -> bool:
    """The sea-neutral rule: the grown region touches the allowed area (a vertex inside it
    proves that without growing) and keeps clear of foreign land and of prohibited areas,
    each grown by the territorial sea as well."""
    tolerance_km = float(licence.tolerance_km)
    allowed, prohibited = licence.allowed_union, licence.prohibited_union
    grown: dict[float, BaseGeometry] = {}

    def grown_by(margin_km: float) -> BaseGeometry:
        if margin_km not in grown:
            grown[margin_km] = grow(region, margin_km)
        return grown[margin_km]

    if allowed is not None:
        allowed_margin_km = tolerance_km + max(r.boundary_error_km for r in licence.allowed)
        vertices = shapely.get_coordinates(region)
        touches = bool(shapely.intersects_xy(allowed, vertices[:, 0], vertices[:, 1]).any())
        if not (touches or allowed.intersects(grown_by(allowed_margin_km))):
            return False
    if near_prohibited and prohibited is not None:
        sea_margin_km = prohibited_margin_km(licence) + TERRITORIAL_SEA_KM
        if prohibited.intersects(grown_by(sea_margin_km)):
            return False
    foreign = licence.foreign
    return foreign is None or _clear_of_foreign(region, foreign, tolerance_km, grown_by)


def _clear_of_foreign(
    region: BaseGeometry,
    foreign: ForeignLand,
    tolerance_km: float,
    grown_by: Callable[[float], BaseGeometry],
) -> bool:
    """Does the region, grown by the tolerance plus each foreign part's own margin, miss every
    foreign part? Parts beyond a box around the region grown by the widest margin are cleared
    without growing it."""
    box = grown_box(region, tolerance_km + foreign.max_margin_km)
    index = foreign.candidates(box) if box is not None else np.arange(len(foreign.parts))
    for i in index.tolist():
        if foreign.parts[i].intersects(grown_by(tolerance_km + float(foreign.margin_km[i]))):
            return False
    return True
