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

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from geo.constants import (
    C_VACUUM_KM_PER_S,
    EARTH_AUTHALIC_RADIUS_KM,
    EARTH_MEAN_RADIUS_KM,
    KM_PER_DEG_LAT_MIN,
    KM_PER_DEG_LON_EQUATOR_MAX,
    PLAUSIBLE_SPEED_KM_PER_S,
)
from geo.errors import InvalidMeasurementError
from geo.geodesy import FloatArray, authalic_latitude_rad, edge_integrals, unit_vectors
from geo.licence import Licence, Sea
from geo.measurement import LandmarkRtt
from geo.sea import TERRITORIAL_SEA_KM, ForeignLand, all_land
from geo.solver import (
    MIN_LANDMARKS,
    Solution,
    cap_angles_rad,
    caps_from_measurements,
    intersect,
    intersect_local_arrays,
    solve,
    wrap_longitudes,
)

if TYPE_CHECKING:
    from geo.calibration import CalibrationModel

logger = logging.getLogger(__name__)

_BUFFER_QUAD_SEGMENTS = 8
# shapely draws round joins with vertices on the arc; scaling the distance by this factor
# makes the chords circumscribe the true circle, so the buffer never falls short.
_BUFFER_CIRCUMSCRIBE = 1.0 / math.cos(math.pi / (4 * _BUFFER_QUAD_SEGMENTS))
_POLAR_BAND_LAT_DEG = 89.0
_MIN_BUFFER_DEG = 1e-9  # 0.1 mm
_BOX_SLACK = 1.001  # the box test must not clip the buffer's outermost vertices by rounding
_POLYGON_TYPE_ID = 3  # shapely.get_type_id of a Polygon
BoolArray = npt.NDArray[np.bool_]
IntArray = npt.NDArray[np.intp]
_OUTPUT_DECIMALS = 6  # 0.11 m; FLOAT_MARGIN_KM (10 m) in the solver absorbs the rounding


class Verdict(StrEnum):
    VERIFIED = "verified"
    VIOLATION = "violation"
    INCONCLUSIVE = "inconclusive"
    INCONSISTENT = "inconsistent"
    DARK = "dark"


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise InvalidMeasurementError(message)


@dataclass(frozen=True, slots=True)
class SolverParams:
    """Solver settings. The proof speed may only be raised above c (looser, still sound)."""

    speed_km_per_s: float = C_VACUUM_KM_PER_S
    plausible_speed_km_per_s: float = PLAUSIBLE_SPEED_KM_PER_S
    processing_floor_ms: float = 0.0  # guaranteed minimum non-propagation time in every RTT
    resolution_km: float = 5.0

    def __post_init__(self) -> None:
        _require(
            math.isfinite(self.speed_km_per_s) and self.speed_km_per_s >= C_VACUUM_KM_PER_S,
            f"speed_km_per_s must be >= c = {C_VACUUM_KM_PER_S} for a proof",
        )
        _require(
            math.isfinite(self.plausible_speed_km_per_s)
            and 0.0 < self.plausible_speed_km_per_s <= self.speed_km_per_s,
            "plausible_speed_km_per_s must be in (0, speed_km_per_s]",
        )
        _require(
            math.isfinite(self.processing_floor_ms) and self.processing_floor_ms >= 0.0,
            "processing_floor_ms must be finite and >= 0",
        )
        _require(
            math.isfinite(self.resolution_km) and 0.05 <= self.resolution_km <= 1000.0,
            "resolution_km must be in [0.05, 1000]",
        )


@dataclass(frozen=True, slots=True)
class Assessment:
    """Everything the solver concluded about one target in one round."""

    verdict: Verdict | None  # None when no licence was given
    sound_region: BaseGeometry | None  # None when inconsistent
    plausible_region: BaseGeometry | None  # not a proof; None when the plausible caps miss
    sound_area_km2: float
    estimate_lat_deg: float | None
    estimate_lon_deg: float | None
    likely_region: BaseGeometry | None
    confidence: float | None
    excluded_landmarks: tuple[str, ...]  # removal restores consistency
    inside_fraction: float | None  # share of sound area allowed and not prohibited

    def to_json(self) -> dict[str, Any]:
        """The `lightfence locate` output fields; geometries as RFC 7946 GeoJSON (lon/lat)."""
        estimate = None
        if self.estimate_lat_deg is not None and self.estimate_lon_deg is not None:
            estimate = {
                "lat": round(self.estimate_lat_deg, _OUTPUT_DECIMALS),
                "lon": round(self.estimate_lon_deg, _OUTPUT_DECIMALS),
            }
        return {
            "verdict": None if self.verdict is None else self.verdict.value,
            "estimate": estimate,
            "sound_region": geojson(self.sound_region),
            "plausible_region": geojson(self.plausible_region),
            "sound_area_km2": round(self.sound_area_km2, 3),
            "likely_region": geojson(self.likely_region),
            "confidence": self.confidence,
            "excluded_landmarks": list(self.excluded_landmarks),
            "inside_fraction": self.inside_fraction,
        }


def geojson(geometry: BaseGeometry | None) -> dict[str, Any] | None:
    """RFC 7946 geometry: counter-clockwise exteriors, coordinates rounded to 1e-6 deg."""
    if geometry is None:
        return None
    oriented = shapely.orient_polygons(geometry, exterior_cw=False)
    rounded = shapely.transform(oriented, lambda xy: np.round(xy, _OUTPUT_DECIMALS))
    result: dict[str, Any] = mapping(rounded)
    return result


def area_km2(geometry: BaseGeometry | None) -> float:
    """Area on WGS84 of a lon/lat (multi)polygon with straight lon/lat edges, km^2.

    The same exact edge integral as `geo.geodesy.ring_area_km2` (Green's theorem on the
    authalic sphere, authalic latitude linear along each edge), batched over every ring.
    """
    if geometry is None or geometry.is_empty:
        return 0.0
    if geometry.geom_type == "Polygon" and not geometry.interiors:  # the common case, cheaply
        xy = shapely.get_coordinates(geometry)
        ring_of = np.zeros(len(xy), dtype=np.int64)
        exterior = np.ones(1, dtype=bool)
    else:
        if geometry.geom_type == "MultiPolygon":  # overlays' usual result: parts are polygons
            polygons = shapely.get_parts(geometry)
            polygons = polygons[~shapely.is_empty(polygons)]
        else:
            parts = shapely.get_parts(shapely.get_parts(geometry))  # collections hold multis
            polygons = parts[
                (shapely.get_type_id(parts) == _POLYGON_TYPE_ID) & ~shapely.is_empty(parts)
            ]
        if len(polygons) == 0:
            return 0.0
        rings = shapely.get_rings(polygons)
        interiors = shapely.get_num_interior_rings(polygons)
        exterior = np.zeros(len(rings), dtype=bool)
        exterior[np.cumsum(interiors + 1) - (interiors + 1)] = True
        xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    signed = np.where(exterior, 1.0, -1.0) * _ring_integrals(xy, ring_of, len(exterior))
    return max(float(np.sum(signed)) * EARTH_AUTHALIC_RADIUS_KM**2, 0.0)


def _ring_integrals(xy: FloatArray, ring_of: IntArray, ring_count: int) -> FloatArray:
    """|area| of each ring on the unit authalic sphere, for edges straight in lon/lat (as GeoJSON
    draws them): the exact integral of sin(authalic latitude) dlon along every edge."""
    lon = np.radians(xy[:, 0])
    beta = authalic_latitude_rad(np.radians(xy[:, 1]))
    same_ring = ring_of[1:] == ring_of[:-1]
    dlon = np.diff(lon)[same_ring]
    integrals = edge_integrals(dlon, beta[:-1][same_ring], beta[1:][same_ring])
    per_ring = np.bincount(ring_of[:-1][same_ring], weights=integrals, minlength=ring_count)
    return np.abs(per_ring)


def centre(geometry: BaseGeometry) -> tuple[float, float]:
    """Area-weighted centre on the sphere (pieces split at +-180 deg recombine correctly);
    falls back to a point on the surface when the centre lies outside the region."""
    parts = [p for p in shapely.get_parts(geometry) if p.area > 0.0]
    weights = np.array([p.area for p in parts])
    centroids = shapely.get_coordinates([p.centroid for p in parts])
    vectors = unit_vectors(centroids[:, 1], centroids[:, 0])
    mean = (vectors * weights[:, None]).sum(axis=0)
    norm = float(np.linalg.norm(mean))
    if norm > 1e-12:
        x, y, z = mean / norm
        lat_deg = math.degrees(math.asin(max(-1.0, min(1.0, z))))
        lon_deg = math.degrees(math.atan2(y, x))
        if geometry.covers(shapely.Point(lon_deg, lat_deg)):
            return lat_deg, lon_deg
    point = geometry.point_on_surface()
    return float(point.y), float(point.x)


def _lon_lat_steps_deg(geometry: BaseGeometry, distance_km: float) -> tuple[float, float] | None:
    """Degrees of latitude and longitude that `distance_km` spans at most around `geometry`;
    None within _POLAR_BAND_LAT_DEG of a pole (where `grow` takes the whole band)."""
    _, min_lat, _, max_lat = geometry.bounds
    lat_step_deg = distance_km / KM_PER_DEG_LAT_MIN
    far_lat_deg = max(abs(min_lat), abs(max_lat)) + lat_step_deg
    if far_lat_deg >= _POLAR_BAND_LAT_DEG:
        return None
    lon_step_deg = distance_km / (KM_PER_DEG_LON_EQUATOR_MAX * math.cos(math.radians(far_lat_deg)))
    return lat_step_deg, lon_step_deg


def grow(geometry: BaseGeometry, distance_km: float) -> BaseGeometry:
    """A lon/lat geometry containing every point within `distance_km` of `geometry`.

    km become degrees conservatively: a latitude degree is at least 110.574 km and a longitude
    degree at least 111.3195 km x cos(lat) at the region's most poleward latitude. Near a pole
    the whole latitude band is taken.
    """
    if distance_km <= 0.0:
        return geometry
    steps = _lon_lat_steps_deg(geometry, distance_km)
    if steps is None:
        _, min_lat, _, max_lat = geometry.bounds
        lat_step_deg = distance_km / KM_PER_DEG_LAT_MIN
        low = max(min_lat - lat_step_deg, -90.0)
        high = min(max_lat + lat_step_deg, 90.0)
        return shapely.box(-180.0, low, 180.0, high)
    # GEOS returns an empty buffer for distances below ~1e-16; growing by more is conservative.
    step_deg = max(max(steps) * _BUFFER_CIRCUMSCRIBE, _MIN_BUFFER_DEG)
    grown = geometry.buffer(step_deg, quad_segs=_BUFFER_QUAD_SEGMENTS)
    return wrap_longitudes(grown)


def _grown_box(geometry: BaseGeometry, distance_km: float) -> BaseGeometry | None:
    """A box containing `grow(geometry, distance_km)` (a buffer of d degrees stays within the
    bounds widened by d), or None where that box would cross the antimeridian or a pole band."""
    steps = _lon_lat_steps_deg(geometry, max(distance_km, 0.0))
    if steps is None:
        return None
    step_deg = max(max(steps) * _BUFFER_CIRCUMSCRIBE, _MIN_BUFFER_DEG) * _BOX_SLACK
    min_lon, min_lat, max_lon, max_lat = geometry.bounds
    if min_lon - step_deg < -180.0 or max_lon + step_deg > 180.0:
        return None
    return shapely.box(
        min_lon - step_deg, min_lat - step_deg, max_lon + step_deg, max_lat + step_deg
    )


def _intersection_near(region: BaseGeometry, area: BaseGeometry) -> BaseGeometry:
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


def _compliant_fraction(
    region: BaseGeometry, licence: Licence, region_km2: float, near_prohibited: bool
) -> float:
    """Share of the region's area allowed and not prohibited: sampled (`_sampled_fractions`),
    or by exact overlay where too few sample points fall inside the region."""
    if region_km2 <= 0.0:
        return 0.0
    sampled = float(
        _sampled_fractions(np.array([region], dtype=object), licence, np.array([near_prohibited]))[
            0
        ]
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
        compliant = _intersection_near(compliant, licence.allowed_union)
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


def _sampled_fractions(
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


def _prohibited_margin_km(licence: Licence) -> float:
    """Growth before comparing with prohibited areas: tolerance plus their drawing error."""
    return float(licence.tolerance_km) + max(r.boundary_error_km for r in licence.prohibited)


def _prohibited_reach_km(licence: Licence) -> float:
    """The widest growth any test against prohibited areas uses: a sea-neutral licence keeps
    the verified region a territorial sea away from them too."""
    sea_km = TERRITORIAL_SEA_KM if licence.sea is Sea.NEUTRAL else 0.0
    return _prohibited_margin_km(licence) + sea_km


def _near_prohibited(region: BaseGeometry, licence: Licence) -> bool:
    """False when a box around the grown region misses every prohibited region (then the
    region is clear of them without growing it); True when it may not."""
    prohibited = licence.prohibited_union
    if prohibited is None:
        return False
    box = _grown_box(region, _prohibited_reach_km(licence))
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
        on_foreign = bool(_on_foreign_land(xy, in_allowed).any())
        not_verified = meets_prohibited or (leaves_allowed and on_foreign)
    not_violation = meets_allowed and leaves_prohibited
    return not_verified and not_violation


def _on_foreign_land(xy: FloatArray, in_allowed: BoolArray) -> BoolArray:
    """Per vertex: on foreign land, i.e. on some country's land and not in the allowed area
    (foreign land is exactly that; one prepared test on the world's land is ~10x faster than
    asking the foreign parts' tree)."""
    return np.asarray(shapely.intersects_xy(all_land(), xy[:, 0], xy[:, 1]) & ~in_allowed)


def _judge_grown(region: BaseGeometry, licence: Licence, near_prohibited: bool) -> Verdict:
    """The verdict by definition: grow the region by the margins and compare.

    Sea-neutral licences add a second way to `verified` (`_verified_at_sea`); with no allowed
    area the strict way (clear of prohibited land only) is replaced by it, so that the
    prohibited countries' territorial seas count too. `violation` is the same for both."""
    strict = _judge_grown_strict(region, licence, near_prohibited)
    if licence.sea is Sea.EXCLUDED or strict is Verdict.VIOLATION:
        return strict
    if strict is Verdict.VERIFIED and licence.allowed:
        return strict
    if _verified_at_sea(region, licence, near_prohibited):
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


def _verified_at_sea(region: BaseGeometry, licence: Licence, near_prohibited: bool) -> bool:
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
        sea_margin_km = _prohibited_margin_km(licence) + TERRITORIAL_SEA_KM
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
    box = _grown_box(region, tolerance_km + foreign.max_margin_km)
    index = foreign.candidates(box) if box is not None else np.arange(len(foreign.parts))
    for i in index.tolist():
        if foreign.parts[i].intersects(grown_by(tolerance_km + float(foreign.margin_km[i]))):
            return False
    return True


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
    return verdict, _compliant_fraction(region, licence, region_km2, near_prohibited)


def assess(
    measurements: Sequence[LandmarkRtt],
    licence: Licence | None = None,
    calibration: CalibrationModel | None = None,
    params: SolverParams = SolverParams(),
) -> Assessment:
    """Sound and plausible regions, an estimate and (with a licence) a verdict."""
    measurements = tuple(measurements)
    for m in measurements:
        if not isinstance(m, LandmarkRtt):
            raise InvalidMeasurementError(f"expected LandmarkRtt values, got {type(m).__name__}")
    caps = caps_from_measurements(measurements, params.speed_km_per_s, params.processing_floor_ms)
    sound = solve(caps, params.resolution_km)
    usable = measurements
    within = sound.region
    if within is None and sound.excluded_landmarks:
        usable = tuple(m for m in measurements if m.landmark_id not in sound.excluded_landmarks)
        within = _region_without(sound, params.resolution_km)
    plausible_caps = caps_from_measurements(
        usable, params.plausible_speed_km_per_s, params.processing_floor_ms
    )
    plausible = intersect(plausible_caps, params.resolution_km)[0] if within is not None else None

    estimate_lat = estimate_lon = confidence = None
    likely: BaseGeometry | None = None
    if calibration is not None:
        estimate = calibration.estimate(usable, within=within)
        estimate_lat, estimate_lon = estimate.lat_deg, estimate.lon_deg
        likely, confidence = estimate.likely_region, estimate.confidence
    elif within is not None:
        estimate_lat, estimate_lon = centre(plausible if plausible is not None else within)

    sound_km2 = area_km2(sound.region)
    verdict: Verdict | None = None
    inside_fraction: float | None = None
    if licence is not None:
        if sound.region is None:
            verdict = Verdict.INCONSISTENT
        else:
            verdict, inside_fraction = judge(sound.region, licence, sound_km2)
    logger.debug("assessed %d landmarks: verdict %s", len(caps), verdict)
    return Assessment(
        verdict=verdict,
        sound_region=sound.region,
        plausible_region=plausible if sound.region is not None else None,
        sound_area_km2=sound_km2,
        estimate_lat_deg=estimate_lat,
        estimate_lon_deg=estimate_lon,
        likely_region=likely,
        confidence=confidence,
        excluded_landmarks=sound.excluded_landmarks,
        inside_fraction=inside_fraction,
    )


def _region_without(sound: Solution, resolution_km: float) -> BaseGeometry | None:
    rest = [c for c in sound.caps if c.landmark_id not in sound.excluded_landmarks]
    return intersect(rest, resolution_km)[0]


# Batches ----------------------------------------------------------------------------------
#
# `assess_many` gives, item by item, what `assess` gives (up to floating-point rounding in
# the regions and figures), computing the common case for the whole batch with one set of
# numpy/shapely calls per step: both tiers' regions (`geo.solver.intersect_many`), areas,
# centres, the licence's vertex test and the inside fraction's overlays. Anything else is
# computed by the single-item functions: inconsistent caps, a calibration model's estimate,
# multi-part regions (split at +-180 deg), verdicts the vertex test leaves open.


def assess_many(
    items: Sequence[tuple[Sequence[LandmarkRtt], Licence | None]],
    calibration: CalibrationModel | None = None,
    params: SolverParams = SolverParams(),
) -> list[Assessment]:
    """`[assess(m, licence, calibration, params) for m, licence in items]`, computed together
    (same verdicts; regions and figures equal up to float rounding). Bad input raises what
    `assess` raises for the first bad item."""
    prepared = [_prepare(tuple(measurements)) for measurements, _ in items]
    batch = [p for p in prepared if p is not None]
    sound_of = _solve_tier(batch, params.speed_km_per_s, params)
    # An inconsistent item needs the exclusion search, and its plausible tier uses only the
    # remaining landmarks: `assess` does both. The others' plausible tier is solved here.
    consistent = [p for p, sound in zip(batch, sound_of, strict=True) if sound is not None]
    plausible_of = iter(_solve_tier(consistent, params.plausible_speed_km_per_s, params))
    tiers: list[tuple[BaseGeometry, BaseGeometry | None] | None] = []
    sound_iter = iter(sound_of)
    for p in prepared:
        sound = None if p is None else next(sound_iter)
        tiers.append(None if sound is None else (sound, next(plausible_of)))
    ready = [i for i, t in enumerate(tiers) if t is not None]
    sounds = [_tier(tiers[i])[0] for i in ready]
    areas = _areas_km2(sounds)
    estimates: dict[int, tuple[float, float, BaseGeometry | None, float | None]] = {}
    if calibration is not None:
        for i in ready:
            p = prepared[i]
            assert p is not None  # ready items were prepared
            estimate = calibration.estimate(p[0], within=_tier(tiers[i])[0])
            estimates[i] = (
                estimate.lat_deg,
                estimate.lon_deg,
                estimate.likely_region,
                estimate.confidence,
            )
    else:
        targets = [_tier(tiers[i])[1] or _tier(tiers[i])[0] for i in ready]
        for i, (lat_deg, lon_deg) in zip(ready, _centres(targets), strict=True):
            estimates[i] = (lat_deg, lon_deg, None, None)
    judged: dict[int, tuple[Verdict, float]] = {}
    by_licence: dict[int, list[int]] = {}
    for k, i in enumerate(ready):
        licence = items[i][1]
        if licence is not None:
            by_licence.setdefault(id(licence), []).append(k)
    for ks in by_licence.values():
        licence = items[ready[ks[0]]][1]
        assert licence is not None  # grouped by licence above
        outcomes = _judge_many([sounds[k] for k in ks], licence, areas[ks])
        for k, outcome in zip(ks, outcomes, strict=True):
            judged[ready[k]] = outcome
    results: list[Assessment] = []
    area_of = dict(zip(ready, areas.tolist(), strict=True))
    for i, (measurements, licence) in enumerate(items):
        tier = tiers[i]
        if tier is None:
            results.append(assess(measurements, licence, calibration, params))
            continue
        lat_deg, lon_deg, likely, confidence = estimates[i]
        verdict, fraction = judged.get(i, (None, None))
        results.append(
            Assessment(
                verdict=verdict,
                sound_region=tier[0],
                plausible_region=tier[1],
                sound_area_km2=area_of[i],
                estimate_lat_deg=lat_deg,
                estimate_lon_deg=lon_deg,
                likely_region=likely,
                confidence=confidence,
                excluded_landmarks=(),
                inside_fraction=fraction,
            )
        )
    return results


def _tier(
    tier: tuple[BaseGeometry, BaseGeometry | None] | None,
) -> tuple[BaseGeometry, BaseGeometry | None]:
    assert tier is not None  # only called for items with a consistent sound region
    return tier


def _prepare(
    measurements: tuple[LandmarkRtt, ...],
) -> tuple[tuple[LandmarkRtt, ...], list[LandmarkRtt]] | None:
    """The measurements and each distinct landmark's best one (as `caps_from_measurements`
    picks them), or None where `assess` must run (it raises the input's error)."""
    best: dict[str, LandmarkRtt] = {}
    for m in measurements:
        if not isinstance(m, LandmarkRtt):
            return None
        seen = best.get(m.landmark_id)
        if seen is None:
            best[m.landmark_id] = m
        elif (seen.lat_deg, seen.lon_deg) != (m.lat_deg, m.lon_deg):
            return None
        elif m.rtt_ms < seen.rtt_ms:
            best[m.landmark_id] = m
    if len(best) < MIN_LANDMARKS:
        return None
    return measurements, list(best.values())


def _solve_tier(
    batch: Sequence[tuple[tuple[LandmarkRtt, ...], list[LandmarkRtt]]],
    speed_km_per_s: float,
    params: SolverParams,
) -> list[BaseGeometry | None]:
    """`intersect(caps_from_measurements(...))[0]` for every prepared item, the caps built
    as flat arrays (the same arithmetic as `Cap`) and solved together."""
    if not batch:
        return []
    best = [m for _, chosen in batch for m in chosen]
    rtt_ms = np.array([m.rtt_ms for m in best], dtype=np.float64)
    radius_km = speed_km_per_s * np.maximum(rtt_ms - params.processing_floor_ms, 0.0) / 2000.0
    solved = intersect_local_arrays(
        np.array([len(chosen) for _, chosen in batch], dtype=np.int64),
        np.array([float(m.lat_deg) for m in best]),
        np.array([float(m.lon_deg) for m in best]),
        cap_angles_rad(radius_km),
        params.resolution_km / EARTH_MEAN_RADIUS_KM,
    )
    regions: list[BaseGeometry | None] = []
    for (measurements, _), result in zip(batch, solved, strict=True):
        if result is not None:
            regions.append(result[0])
            continue
        caps = caps_from_measurements(measurements, speed_km_per_s, params.processing_floor_ms)
        regions.append(intersect(caps, params.resolution_km)[0])
    return regions


def _areas_km2(geometries: Sequence[BaseGeometry | None]) -> FloatArray:
    """`area_km2` of each geometry, with one set of calls for all of them."""
    areas = np.zeros(len(geometries))
    present = [i for i, g in enumerate(geometries) if g is not None and not g.is_empty]
    if not present:
        return areas
    geoms = np.array([geometries[i] for i in present], dtype=object)
    parts, owner = shapely.get_parts(geoms, return_index=True)
    parts, inner = shapely.get_parts(parts, return_index=True)  # collections hold multis
    owner = owner[inner]
    polygon = (shapely.get_type_id(parts) == _POLYGON_TYPE_ID) & ~shapely.is_empty(parts)
    parts, owner = parts[polygon], owner[polygon]
    if len(parts) == 0:
        return areas
    rings, ring_polygon = shapely.get_rings(parts, return_index=True)
    exterior = np.ones(len(rings), dtype=bool)
    exterior[1:] = ring_polygon[1:] != ring_polygon[:-1]
    xy, ring_of = shapely.get_coordinates(rings, return_index=True)
    signed = np.where(exterior, 1.0, -1.0) * _ring_integrals(xy, ring_of, len(rings))
    per_geometry = np.bincount(owner[ring_polygon], weights=signed, minlength=len(present))
    areas[present] = np.maximum(per_geometry * EARTH_AUTHALIC_RADIUS_KM**2, 0.0)
    return areas


def _centres(geometries: Sequence[BaseGeometry]) -> list[tuple[float, float]]:
    """`centre` of each geometry; single polygons together, others one by one."""
    geoms = np.array(geometries, dtype=object)
    single = shapely.get_type_id(geoms) == _POLYGON_TYPE_ID
    single[single] = shapely.area(geoms[single]) > 0.0
    results: list[tuple[float, float] | None] = [None] * len(geometries)
    if single.any():
        chosen = geoms[single]
        weights = shapely.area(chosen)
        xy = shapely.get_coordinates(shapely.centroid(chosen))
        mean = unit_vectors(xy[:, 1], xy[:, 0]) * weights[:, None]
        norm = np.sqrt(np.sum(mean * mean, axis=1))
        unit = mean / norm[:, None]
        lat_deg = np.degrees(np.arcsin(np.clip(unit[:, 2], -1.0, 1.0)))
        lon_deg = np.degrees(np.arctan2(unit[:, 1], unit[:, 0]))
        covered = shapely.covers(chosen, shapely.points(lon_deg, lat_deg)) & (norm > 1e-12)
        for i, inside, lat, lon in zip(
            np.flatnonzero(single), covered, lat_deg.tolist(), lon_deg.tolist(), strict=True
        ):
            if inside:
                results[i] = (lat, lon)
    return [r if r is not None else centre(g) for r, g in zip(results, geometries, strict=True)]


def _judge_many(
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
        hits = _on_foreign_land(xy, in_allowed)
        on_foreign = np.bincount(owner, weights=hits, minlength=count) > 0
        not_verified = meets_prohibited | (leaves_allowed & on_foreign)
    by_points = not_verified & (meets_allowed & leaves_prohibited)
    verdicts = [
        Verdict.INCONCLUSIVE if decided else _judge_grown(region, licence, bool(close))
        for region, decided, close in zip(regions, by_points, near, strict=True)
    ]
    fractions = _compliant_fractions(
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
    distance_km = max(_prohibited_reach_km(licence), 0.0)
    min_lon, min_lat, max_lon, max_lat = shapely.bounds(geoms).T
    lat_step_deg = distance_km / KM_PER_DEG_LAT_MIN
    far_lat_deg = np.maximum(np.abs(min_lat), np.abs(max_lat)) + lat_step_deg
    polar = far_lat_deg >= _POLAR_BAND_LAT_DEG
    with np.errstate(divide="ignore"):
        lon_step_deg = distance_km / (
            KM_PER_DEG_LON_EQUATOR_MAX * np.cos(np.radians(np.where(polar, 0.0, far_lat_deg)))
        )
    step_deg = (
        np.maximum(np.maximum(lat_step_deg, lon_step_deg) * _BUFFER_CIRCUMSCRIBE, _MIN_BUFFER_DEG)
        * _BOX_SLACK
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


def _compliant_fractions(
    chosen: Sequence[int],
    geoms: npt.NDArray[np.object_],
    licence: Licence,
    areas_km2: FloatArray,
    near: BoolArray,
) -> dict[int, float]:
    """`_compliant_fraction` for the chosen regions: one lattice estimate for all of them,
    the allowed overlay at once for those the lattice leaves open."""
    index = [i for i in chosen if areas_km2[i] > 0.0]
    fractions = {i: 0.0 for i in chosen}
    if not index:
        return fractions
    sampled = _sampled_fractions(geoms[index], licence, near[index])
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
            compliant = np.array([_intersection_near(r, allowed) for r in regions], dtype=object)
    prohibited = licence.prohibited_union
    if prohibited is not None:
        for k, i in enumerate(index):
            if near[i] and prohibited.intersects(compliant[k]):
                compliant[k] = compliant[k].difference(prohibited)
    areas = _areas_km2(list(compliant))
    for k, i in enumerate(index):
        fractions[i] = min(max(float(areas[k]) / float(areas_km2[i]), 0.0), 1.0)
    return fractions
