"""Sound and plausible regions: intersections of speed-of-light caps, with the exclusion search.

`intersect` tries the local gnomonic frame (`geo.local_frame`) and falls back to lon/lat
polygons (`geo.cap_polygon`); both return a region that always contains the true intersection
of the WGS84 geodesic discs (see `geo.cap_polygon`). `solve` adds the search for the smallest
set of landmarks whose removal restores consistency. The batched path is `geo.solver_batch`.
"""

from __future__ import annotations

import itertools
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from shapely.geometry.base import BaseGeometry

from geo.cap_polygon import intersect_lonlat
from geo.caps import MIN_LANDMARKS, Cap
from geo.constants import (
    EARTH_MEAN_RADIUS_KM,
)
from geo.errors import InsufficientDataError, InvalidMeasurementError
from geo.geodesy import (
    angle_between_rad,
    unit_vectors,
)
from geo.local_frame import intersect_local

logger = logging.getLogger(__name__)

_MAX_EXCLUSION_CANDIDATES = 12
_MAX_EXCLUSION_SIZE = 3


def intersect(caps: Sequence[Cap], resolution_km: float) -> tuple[BaseGeometry | None, float]:
    """Intersection of the caps' polygons (None when empty: the caps provably do not meet),
    and the largest boundary excess of any polygon used (km).

    Tries the local gnomonic frame first (see `intersect_local`); near the poles, for caps of
    about a hemisphere, or whenever one of its checks fails it falls back to intersecting
    lon/lat polygons.
    """
    local = intersect_local(caps, resolution_km / EARTH_MEAN_RADIUS_KM)
    if local is not None:
        return local
    return intersect_lonlat(caps, resolution_km)


@dataclass(frozen=True, slots=True)
class Solution:
    """Result of solving one tier."""

    region: BaseGeometry | None  # None when the caps do not intersect
    caps: tuple[Cap, ...]
    excluded_landmarks: tuple[str, ...]  # smallest removal set restoring consistency
    excess_km: float  # largest boundary excess over the inflated caps (achieved resolution)


def _conflict_counts(caps: Sequence[Cap]) -> list[int]:
    centres = unit_vectors([c.lat_deg for c in caps], [c.lon_deg for c in caps])
    angles = np.array([c.angle_rad for c in caps])
    gaps = angle_between_rad(centres[:, None, :], centres[None, :, :])
    disjoint = gaps > angles[:, None] + angles[None, :]
    return [int(v) for v in disjoint.sum(axis=1)]


def _restoring_removal(caps: Sequence[Cap], resolution_km: float) -> tuple[str, ...]:
    """Smallest set of landmarks whose removal makes the remaining caps intersect.

    Exhaustive over sets of up to three among the twelve most conflicting landmarks
    (conflict = pairwise disjoint caps), then greedy; () if nothing works while keeping
    at least MIN_LANDMARKS landmarks.
    """
    conflicts = _conflict_counts(caps)
    ranked = sorted(range(len(caps)), key=lambda i: (-conflicts[i], -caps[i].radius_km))
    candidates = ranked[:_MAX_EXCLUSION_CANDIDATES]
    for size in range(1, _MAX_EXCLUSION_SIZE + 1):
        if len(caps) - size < MIN_LANDMARKS:
            return ()
        for removed in itertools.combinations(candidates, size):
            rest = [c for i, c in enumerate(caps) if i not in removed]
            if intersect(rest, resolution_km)[0] is not None:
                return tuple(sorted(caps[i].landmark_id for i in removed))
    removed_set: list[int] = []
    for i in ranked:
        if len(caps) - len(removed_set) - 1 < MIN_LANDMARKS:
            break
        removed_set.append(i)
        rest = [c for j, c in enumerate(caps) if j not in removed_set]
        if intersect(rest, resolution_km)[0] is not None:
            return tuple(sorted(caps[j].landmark_id for j in removed_set))
    return ()


def solve(caps: Sequence[Cap], resolution_km: float) -> Solution:
    """Intersect caps; if they do not meet, name the landmarks whose removal restores it."""
    if len(caps) < MIN_LANDMARKS:
        raise InsufficientDataError(
            f"need measurements from at least {MIN_LANDMARKS} distinct landmarks, got {len(caps)}"
        )
    if not (math.isfinite(resolution_km) and resolution_km > 0.0):
        raise InvalidMeasurementError(f"resolution_km must be finite and > 0, got {resolution_km}")
    region, excess_km = intersect(caps, resolution_km)
    if region is not None:
        return Solution(region=region, caps=tuple(caps), excluded_landmarks=(), excess_km=excess_km)
    excluded = _restoring_removal(caps, resolution_km)
    logger.info("caps do not intersect; removing %s restores consistency", excluded or "nothing")
    return Solution(region=None, caps=tuple(caps), excluded_landmarks=excluded, excess_km=excess_km)
