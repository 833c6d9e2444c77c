"""Calibrated tier: a delay→distance model learned from the landmark mesh, and an estimate.

Not a proof. Two things are learned from the mesh's (claimed distance, best RTT) samples:

- per landmark, CBG's bestline (Gueye et al. 2006): the line below every sample with slope no
  shallower than light at 2/3 c, minimising the total gap. It turns an RTT into a *maximum*
  distance, which the estimate may overshoot only at a steep cost;
- a *distance-dependent speed curve* shared by all landmarks: the median and spread of
  log(distance / RTT) as a smooth function of the RTT (a Gaussian kernel in log RTT). Real paths
  are slower over short distances (detours, metro loops, queueing weigh more), so one speed per
  landmark, dominated by its many long-haul samples, overestimates short distances. Each landmark
  keeps a shrunk log offset from the curve (a landmark behind a distant hub is consistently
  slower than the curve says).

The estimate maximises a heavy-tailed (Student-t) likelihood of the log distances to the
NEAREST_LANDMARKS landmarks with the smallest RTTs over a global grid, then refines it locally.
Far landmarks add little information and much route noise; the t tails let one wrong or delayed
landmark be outvoted. Measured against classic CBG on real and synthetic meshes by
`python -m benchmarks.calibration_eval` (docs/geo.md).
"""

from __future__ import annotations

import functools
import itertools
import logging
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry import Point
from shapely.geometry.base import BaseGeometry
from shapely.ops import nearest_points

from geo.constants import EARTH_MEAN_RADIUS_KM, PLAUSIBLE_SPEED_KM_PER_S
from geo.errors import GeoError, InsufficientDataError
from geo.geodesy import sphere_destinations_rad, unit_vectors
from geo.measurement import LandmarkRtt
from geo.regions import split_antimeridian

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]

MIN_SAMPLES_PER_LANDMARK = 6
"""Landmarks with fewer mesh samples use the global (pooled) bestline."""

PLAUSIBLE_KM_PER_RTT_MS = PLAUSIBLE_SPEED_KM_PER_S / 2000.0
"""Distance per ms of RTT at 2/3 c (~100 km/ms): the steepest slope a bestline may have."""

NEAREST_LANDMARKS = 10
"""The estimate uses this many landmarks with the smallest RTTs (leave-one-out on the real sets:
8 to 15 all beat CBG; more lets far, route-dominated paths pull the fit)."""

LIKELY_COVERAGE = 0.8
"""Target share of true locations inside `likely_region` (leave-one-out, docs/geo.md)."""

RADIUS_FACTOR = 3.0
"""`error_radius_km` is at least this many times the nearest landmark's likely-distance spread..."""

LIKELY_LOG_RATIO = 3.0
"""...and reaches every position whose cost is within this of the estimate's (a likelihood-ratio
region: nominally 95 % for two coordinates; real RTTs have heavier tails than the model). With
few, distant landmarks the likelihood is flat along a ring and the spread alone is too small:
IBM's 13 regions had a leave-one-out coverage of 0.54 with the spread alone, 0.85 with this;
Azure's 46 went from 0.87 to 0.98, the median radius from 427 to 481 km."""

_REGION_RINGS_KM = tuple(float(v) for v in np.arange(50.0, 5001.0, 50.0))
_REGION_AZIMUTHS = np.linspace(0.0, 2.0 * np.pi, 48, endpoint=False)

RADIUS_FLOOR_KM = 50.0  # city-scale noise no RTT spread can see

SHRINK_SAMPLES = 8.0
"""A landmark's own speed offset is weighted n / (n + SHRINK_SAMPLES): few samples, little trust."""

CURVE_BANDWIDTH = 0.35  # kernel width in ln(RTT): a factor of ~1.4 either way
CURVE_KNOTS_MS = tuple(float(v) for v in np.geomspace(1.0, 512.0, 28))
SIGMA_FLOOR = 0.1  # ln-distance spread floor: no RTT pins a distance better than ~10 %
DISTANCE_SOFTENING_KM = 50.0  # log(d + this): a 5 km vs 20 km miss is not a factor of 4
T_DEGREES_OF_FREEDOM = 2.0  # heavy tails: one wrong landmark is outvoted, not averaged in
OVERSHOOT_SCALE_KM = 50.0  # cost per this much beyond a landmark's bestline maximum

_MIN_SPAN_MS = 1.0  # samples closer than this to the intercept say nothing about speed
_GRID_POINTS = 12_000  # global search grid (~200 km spacing), refined locally below
_REFINE_STEPS_DEG = (1.5, 0.5, 0.15, 0.05)


@dataclass(frozen=True, slots=True)
class CalibrationSample:
    """A landmark-to-landmark mesh measurement: claimed distance and the best RTT seen."""

    landmark_id: str
    distance_km: float
    rtt_ms: float

    def __post_init__(self) -> None:
        for value, what in ((self.distance_km, "distance_km"), (self.rtt_ms, "rtt_ms")):
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise GeoError(f"calibration {self.landmark_id}: {what} must be a number")
            if not math.isfinite(value) or value < 0.0:
                raise GeoError(f"calibration {self.landmark_id}: {what} must be finite and >= 0")
        if self.rtt_ms <= 0.0:
            raise GeoError(f"calibration {self.landmark_id}: rtt_ms must be > 0")


@dataclass(frozen=True, slots=True)
class LandmarkModel:
    """One landmark's bestline (or the pooled one) and its offset from the speed curve."""

    intercept_ms: float  # bestline intercept: fixed delay not due to distance
    max_km_per_ms: float  # 1 / bestline slope: the bestline's (fastest) distance per RTT ms
    low_km_per_ms: float  # 10th percentile of distance / (rtt − intercept)
    mid_km_per_ms: float  # median
    high_km_per_ms: float  # 90th percentile
    samples: int
    log_speed_offset: float = 0.0  # shrunk median of ln(distance / curve distance)

    def band_km(self, rtt_ms: float) -> tuple[float, float, float, float]:
        """(low, likely, high, bestline max) distance for an RTT, km."""
        span_ms = max(rtt_ms - self.intercept_ms, 0.0)
        max_km = span_ms * self.max_km_per_ms
        high_km = min(span_ms * self.high_km_per_ms, max_km)
        mid_km = min(span_ms * self.mid_km_per_ms, high_km)
        return span_ms * self.low_km_per_ms, mid_km, high_km, max_km


@dataclass(frozen=True, slots=True)
class SpeedCurve:
    """ln(distance / RTT) against ln(RTT): median and robust spread at fixed RTT knots."""

    knots_rtt_ms: tuple[float, ...]
    log_speed: tuple[float, ...]  # ln(km per RTT ms), median
    log_sigma: tuple[float, ...]  # 1.4826 × weighted MAD of ln(km per RTT ms)

    @classmethod
    def fit(cls, distance_km: FloatArray, rtt_ms: FloatArray) -> SpeedCurve:
        ok = (distance_km > 0.0) & (rtt_ms > 0.0)
        log_rtt = np.log(rtt_ms[ok])
        log_speed = np.log(distance_km[ok] / rtt_ms[ok])
        medians, sigmas = [], []
        for knot in CURVE_KNOTS_MS:
            weight = np.exp(-0.5 * ((log_rtt - math.log(knot)) / CURVE_BANDWIDTH) ** 2) + 1e-12
            median = _weighted_median(log_speed, weight)
            medians.append(median)
            sigmas.append(1.4826 * _weighted_median(np.abs(log_speed - median), weight))
        return cls(CURVE_KNOTS_MS, tuple(medians), tuple(sigmas))

    def at(self, rtt_ms: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(ln km per ms, ln spread) at each RTT; flat beyond the outer knots."""
        x = np.log(np.clip(rtt_ms, self.knots_rtt_ms[0], self.knots_rtt_ms[-1]))
        knots = np.log(np.asarray(self.knots_rtt_ms))
        speed = np.interp(x, knots, np.asarray(self.log_speed))
        sigma = np.interp(x, knots, np.asarray(self.log_sigma))
        return speed, np.maximum(sigma, SIGMA_FLOOR)


def _weighted_median(values: FloatArray, weights: FloatArray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])


def bestline(distance_km: FloatArray, rtt_ms: FloatArray) -> tuple[float, float]:
    """CBG bestline: (slope ms/km, intercept ms) of the line below all points.

    Maximises slope·Σd + n·intercept (minimises the total vertical gap) subject to the line lying
    below every point, intercept >= 0 and slope >= 1 / PLAUSIBLE_KM_PER_RTT_MS. The optimum of this
    2-variable LP lies on an edge of the points' lower convex hull, on the slope bound through a
    hull vertex, or on the intercept bound, so we enumerate those candidates exactly.
    """
    min_slope = 1.0 / PLAUSIBLE_KM_PER_RTT_MS
    order = np.lexsort((rtt_ms, distance_km))
    d_all, r_all = distance_km[order], rtt_ms[order]
    # A point with another at least as far and no slower is implied by it for every line of
    # positive slope: only the frontier (RTT below every farther point's) constrains the line.
    frontier = np.ones(len(d_all), dtype=bool)
    frontier[:-1] = r_all[:-1] < np.minimum.accumulate(r_all[::-1])[::-1][1:]
    d, r = d_all[frontier], r_all[frontier]
    d_list, r_list = d.tolist(), r.tolist()  # the hull walk is scalar work: Python floats
    hull: list[int] = []
    for i in range(len(d_list)):
        while len(hull) >= 2:
            a, b = hull[-2], hull[-1]
            turn = (d_list[b] - d_list[a]) * (r_list[i] - r_list[a]) - (r_list[b] - r_list[a]) * (
                d_list[i] - d_list[a]
            )
            if turn <= 0.0:
                hull.pop()
            else:
                break
        hull.append(i)
    candidates: list[tuple[float, float]] = []
    for a, b in itertools.pairwise(hull):
        if d_list[b] > d_list[a]:
            slope = (r_list[b] - r_list[a]) / (d_list[b] - d_list[a])
            candidates.append((slope, r_list[a] - slope * d_list[a]))
    for i in hull:
        candidates.append((min_slope, r_list[i] - min_slope * d_list[i]))
        if d_list[i] > 0.0:
            candidates.append((r_list[i] / d_list[i], 0.0))
    if not candidates:
        return (min_slope, 0.0)
    slopes, intercepts = np.array(candidates).T
    feasible = (slopes >= min_slope) & (intercepts >= 0.0)
    line_ms = slopes[:, None] * d[None, :] + intercepts[:, None]
    feasible &= np.all(line_ms <= r[None, :] + 1e-9, axis=1)
    if not np.any(feasible):
        return (min_slope, 0.0)
    # The first candidate with the best score, as a scan in candidate order would keep.
    score = np.where(feasible, slopes * float(d_all.sum()) + len(d_all) * intercepts, -np.inf)
    best = int(np.argmax(score))
    return float(slopes[best]), float(intercepts[best])


def fit_landmark(distance_km: FloatArray, rtt_ms: FloatArray) -> LandmarkModel:
    """A LandmarkModel from one landmark's (distance, rtt) samples."""
    # Samples faster than 2/3 c come from wrong coordinates (or exotic links); CBG's constraints
    # cannot hold with them, so they are left out (the audit reports them).
    keep = rtt_ms * PLAUSIBLE_KM_PER_RTT_MS >= distance_km
    d, r = distance_km[keep], rtt_ms[keep]
    if len(d) == 0:
        d, r = distance_km, rtt_ms
    slope, intercept = bestline(d, r)
    span = r - intercept
    useful = span >= _MIN_SPAN_MS
    speeds = d[useful] / span[useful] if np.any(useful) else np.array([1.0 / slope])
    low, mid, high = (float(v) for v in np.quantile(speeds, [0.1, 0.5, 0.9]))
    return LandmarkModel(intercept, 1.0 / slope, low, mid, high, len(distance_km))


@dataclass(frozen=True, slots=True)
class LocationEstimate:
    """The calibrated tier's answer. Not a proof.

    `confidence` (0..1) is LIKELY_COVERAGE, the measured chance that the true location lies in
    `likely_region`, scaled by the share of the used measurements consistent with the estimate.
    """

    lat_deg: float
    lon_deg: float
    likely_region: BaseGeometry
    confidence: float
    error_radius_km: float


class CalibrationModel:
    """Per-landmark bestlines, the shared speed curve, and a pooled fallback bestline."""

    def __init__(
        self,
        landmarks: Mapping[str, LandmarkModel],
        global_model: LandmarkModel,
        curve: SpeedCurve | None = None,
    ):
        self.landmarks = dict(landmarks)
        self.global_model = global_model
        # A model saved before the curve existed: a flat curve at its pooled median speed.
        self.curve = curve or SpeedCurve(
            CURVE_KNOTS_MS[:1] + CURVE_KNOTS_MS[-1:],
            (math.log(global_model.mid_km_per_ms),) * 2,
            (SIGMA_FLOOR * 2,) * 2,
        )

    @classmethod
    def fit(cls, samples: Iterable[CalibrationSample]) -> CalibrationModel:
        by_landmark: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for s in samples:
            by_landmark[s.landmark_id].append((s.distance_km, s.rtt_ms))
        return cls._fit_grouped(
            {k: np.asarray(v, dtype=np.float64) for k, v in by_landmark.items()}
        )

    @classmethod
    def fit_arrays(
        cls, landmark_ids: Sequence[str], distance_km: FloatArray, rtt_ms: FloatArray
    ) -> CalibrationModel:
        """`fit` from parallel arrays: sample k is (landmark_ids[k], distance_km[k], rtt_ms[k]).

        The same checks as CalibrationSample, without building one object per sample.
        """
        distance_km = np.asarray(distance_km, dtype=np.float64)
        rtt_ms = np.asarray(rtt_ms, dtype=np.float64)
        if not (len(landmark_ids) == len(distance_km) == len(rtt_ms)):
            raise GeoError("calibration arrays must have the same length")
        if not (np.all(np.isfinite(distance_km)) and np.all(distance_km >= 0.0)):
            raise GeoError("calibration distance_km must be finite and >= 0")
        if not (np.all(np.isfinite(rtt_ms)) and np.all(rtt_ms > 0.0)):
            raise GeoError("calibration rtt_ms must be finite and > 0")
        names, groups = np.unique(np.asarray(landmark_ids, dtype=object), return_inverse=True)
        grouped = {}
        for k, name in enumerate(names):
            chosen = groups == k
            grouped[str(name)] = np.column_stack((distance_km[chosen], rtt_ms[chosen]))
        return cls._fit_grouped(grouped)

    @classmethod
    def _fit_grouped(cls, by_landmark: Mapping[str, FloatArray]) -> CalibrationModel:
        """Fit from each landmark's (n, 2) array of (distance km, RTT ms) samples."""
        arrays = [v for v in by_landmark.values() if len(v)]
        if sum(len(v) for v in arrays) < 2:
            raise InsufficientDataError("calibration needs at least 2 mesh samples")
        pooled_array = np.concatenate(arrays)
        global_model = fit_landmark(pooled_array[:, 0], pooled_array[:, 1])
        curve = SpeedCurve.fit(pooled_array[:, 0], pooled_array[:, 1])
        landmarks = {}
        for landmark_id, array in by_landmark.items():
            if len(array) >= MIN_SAMPLES_PER_LANDMARK:
                model = fit_landmark(array[:, 0], array[:, 1])
                offset = _log_offset(curve, array[:, 0], array[:, 1])
                landmarks[landmark_id] = replace(model, log_speed_offset=offset)
        logger.debug("calibrated %d landmarks, %d samples", len(landmarks), len(pooled_array))
        return cls(landmarks, global_model, curve)

    def model_for(self, landmark_id: str) -> LandmarkModel:
        return self.landmarks.get(landmark_id, self.global_model)

    def to_json(self) -> dict[str, Any]:
        return {
            "global": asdict(self.global_model),
            "landmarks": {k: asdict(v) for k, v in sorted(self.landmarks.items())},
            "curve": asdict(self.curve),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> CalibrationModel:
        try:
            landmarks = {str(k): LandmarkModel(**v) for k, v in obj["landmarks"].items()}
            curve = obj.get("curve")
            return cls(
                landmarks,
                LandmarkModel(**obj["global"]),
                None if curve is None else SpeedCurve(**{k: tuple(v) for k, v in curve.items()}),
            )
        except (KeyError, TypeError, AttributeError, ValueError) as exc:
            raise GeoError(f"malformed calibration model: {exc}") from exc

    def likely_distance_km(
        self, landmark_ids: Sequence[str], rtt_ms: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """(likely distance km, ln spread) for each landmark's RTT: the curve plus its offset."""
        log_speed, sigma = self.curve.at(rtt_ms)
        offset = np.array([self.model_for(k).log_speed_offset for k in landmark_ids])
        return np.exp(log_speed + offset) * rtt_ms, sigma

    def estimate(
        self, measurements: Sequence[LandmarkRtt], within: BaseGeometry | None = None
    ) -> LocationEstimate:
        """Maximum-likelihood position from the nearest landmarks; clipped to `within` if given."""
        if len(measurements) < 2:
            raise InsufficientDataError("a calibrated estimate needs at least 2 landmarks")
        used = sorted(measurements, key=lambda m: m.rtt_ms)[:NEAREST_LANDMARKS]
        fit = self._likelihood(used)
        lat_deg, lon_deg = fit.solve()
        likely_km, sigma = fit.likely_km, fit.sigma
        inlier_share = float(np.mean(np.abs(fit.scaled_residuals(lat_deg, lon_deg)) <= 2.0))
        nearest = int(np.argmin(likely_km * sigma))
        error_radius_km = RADIUS_FLOOR_KM + RADIUS_FACTOR * float(
            (likely_km[nearest] + DISTANCE_SOFTENING_KM) * sigma[nearest]
        )
        error_radius_km = max(error_radius_km, fit.region_radius_km(lat_deg, lon_deg))
        if within is not None and not within.is_empty:
            point = Point(lon_deg, lat_deg)
            if not within.covers(point):
                nearest_point = nearest_points(within, point)[0]
                lon_deg, lat_deg = float(nearest_point.x), float(nearest_point.y)
        likely = disc(lat_deg, lon_deg, error_radius_km)
        if within is not None and not within.is_empty:
            clipped = likely.intersection(within)
            likely = clipped if not clipped.is_empty else within
        return LocationEstimate(
            lat_deg, lon_deg, likely, LIKELY_COVERAGE * inlier_share, error_radius_km
        )

    def check_position(
        self, measurements: Sequence[LandmarkRtt], lat_deg: float, lon_deg: float
    ) -> PositionCheck:
        """Compare a claimed position with the estimate from the same nearest landmarks."""
        if len(measurements) < 2:
            raise InsufficientDataError("a position check needs at least 2 landmarks")
        used = sorted(measurements, key=lambda m: m.rtt_ms)[:NEAREST_LANDMARKS]
        fit = self._likelihood(used)
        best_lat, best_lon = fit.solve()
        claimed = float(fit.cost(np.array(lat_deg), np.array(lon_deg)))
        best = float(fit.cost(np.array(best_lat), np.array(best_lon)))
        residuals = fit.scaled_residuals(lat_deg, lon_deg)
        disagreeing = tuple(
            m.landmark_id for m, e in zip(used, residuals, strict=True) if abs(e) > 2.0
        )
        return PositionCheck(best_lat, best_lon, max(claimed - best, 0.0), disagreeing)

    def _likelihood(self, used: Sequence[LandmarkRtt]) -> DistanceLikelihood:
        rtt = np.array([m.rtt_ms for m in used])
        likely_km, sigma = self.likely_distance_km([m.landmark_id for m in used], rtt)
        max_km = np.array([self.model_for(m.landmark_id).band_km(m.rtt_ms)[3] for m in used])
        lat = np.array([m.lat_deg for m in used])
        lon = np.array([m.lon_deg for m in used])
        return DistanceLikelihood(lat, lon, likely_km, sigma, max_km)


@dataclass(frozen=True, slots=True)
class PositionCheck:
    """How well a claimed position explains RTTs, against the best position the model finds."""

    estimate_lat_deg: float
    estimate_lon_deg: float
    excess_cost: float  # likelihood cost at the claim minus at the estimate (>= 0)
    disagreeing: tuple[str, ...]  # used landmarks whose RTT alone contradicts the claim


def _log_offset(curve: SpeedCurve, distance_km: FloatArray, rtt_ms: FloatArray) -> float:
    """Shrunk median ln(distance / curve distance) of one landmark's samples."""
    ok = (distance_km > 0.0) & (rtt_ms > 0.0)
    if not np.any(ok):
        return 0.0
    log_speed, _ = curve.at(rtt_ms[ok])
    residual = np.log(distance_km[ok] / rtt_ms[ok]) - log_speed
    n = int(np.count_nonzero(ok))
    return float(np.median(residual)) * n / (n + SHRINK_SAMPLES)


def _fibonacci_grid(points: int) -> tuple[FloatArray, FloatArray]:
    """Near-uniform points on the sphere (lat_deg, lon_deg)."""
    i = np.arange(points) + 0.5
    lat = np.degrees(np.arcsin(1.0 - 2.0 * i / points))
    lon = (np.degrees(np.pi * (1.0 + math.sqrt(5.0)) * i) + 180.0) % 360.0 - 180.0
    return lat, lon


@functools.lru_cache(maxsize=4)
def _search_grid(points: int) -> tuple[FloatArray, FloatArray, FloatArray]:
    """(lat_deg, lon_deg, unit vectors) of a global search grid, built once per size."""
    lat, lon = _fibonacci_grid(points)
    return lat, lon, unit_vectors(lat, lon)


class DistanceLikelihood:
    """Student-t cost of ln(softened distance) misfits, plus bestline overshoot.

    The cost is a negative log-likelihood (up to a constant): a cost difference between two
    positions is a log-likelihood ratio. The landmark audit uses it with no bestline (`max_km`
    infinite) and its own tail weight `nu`.
    """

    def __init__(
        self,
        lat_deg: FloatArray,
        lon_deg: FloatArray,
        likely_km: FloatArray,
        sigma: FloatArray,
        max_km: FloatArray,
        *,
        nu: float = T_DEGREES_OF_FREEDOM,
    ):
        self.nu = nu
        self.vectors = unit_vectors(lat_deg, lon_deg)
        self.likely_km = likely_km
        self.log_likely = np.log(likely_km + DISTANCE_SOFTENING_KM)
        self.sigma = sigma
        self.max_km = max_km
        self.bounded = bool(np.any(np.isfinite(max_km)))

    def _distances_km(self, lat_deg: FloatArray, lon_deg: FloatArray) -> FloatArray:
        return self._distances_from_vectors_km(unit_vectors(lat_deg, lon_deg))

    def _distances_from_vectors_km(self, points: FloatArray) -> FloatArray:
        dot = np.clip(points @ self.vectors.T, -1.0, 1.0)
        return np.asarray(np.arccos(dot) * EARTH_MEAN_RADIUS_KM, dtype=np.float64)

    def scaled_residuals(self, lat_deg: float, lon_deg: float) -> FloatArray:
        dist_km = self._distances_km(np.array(lat_deg), np.array(lon_deg))
        return np.asarray(
            (np.log(dist_km + DISTANCE_SOFTENING_KM) - self.log_likely) / self.sigma,
            dtype=np.float64,
        )

    def cost(self, lat_deg: FloatArray, lon_deg: FloatArray) -> FloatArray:
        return self._cost_at(self._distances_km(lat_deg, lon_deg))

    def _cost_at(self, dist_km: FloatArray) -> FloatArray:
        e = (np.log(dist_km + DISTANCE_SOFTENING_KM) - self.log_likely) / self.sigma
        nu = self.nu
        t_cost = 0.5 * (nu + 1.0) * np.log1p(e * e / nu)
        if self.bounded:
            t_cost += np.maximum(dist_km - self.max_km, 0.0) / OVERSHOOT_SCALE_KM
        return np.asarray(np.sum(t_cost, axis=-1), dtype=np.float64)

    def region_radius_km(self, lat_deg: float, lon_deg: float) -> float:
        """Farthest ring point (50 km steps, up to 5,000 km) around (lat, lon) whose cost is
        within LIKELY_LOG_RATIO of the cost there."""
        lat_rad, lon_rad = math.radians(lat_deg), math.radians(lon_deg)
        rings = [
            sphere_destinations_rad(lat_rad, lon_rad, _REGION_AZIMUTHS, r / EARTH_MEAN_RADIUS_KM)
            for r in _REGION_RINGS_KM
        ]
        lat = np.degrees(np.concatenate([ring[0] for ring in rings]))
        lon = np.degrees(np.concatenate([ring[1] for ring in rings]))
        radius = np.repeat(np.asarray(_REGION_RINGS_KM), len(_REGION_AZIMUTHS))
        limit = float(self.cost(np.array(lat_deg), np.array(lon_deg))) + LIKELY_LOG_RATIO
        inside = self.cost(lat, lon) <= limit
        return float(radius[inside].max()) if np.any(inside) else 0.0

    def solve(self, grid_points: int = _GRID_POINTS) -> tuple[float, float]:
        """The lowest-cost position: best of a global grid, then refined locally."""
        grid_lat, grid_lon, grid_vectors = _search_grid(grid_points)
        costs = self._cost_at(self._distances_from_vectors_km(grid_vectors))
        best = int(np.argmin(costs))
        lat0, lon0, best_cost = float(grid_lat[best]), float(grid_lon[best]), float(costs[best])
        offsets = np.arange(-4, 5, dtype=np.float64)
        for step_deg in _REFINE_STEPS_DEG:
            d_lat = (offsets[:, None] * step_deg + 0.0 * offsets[None, :]).ravel()
            d_lon = (0.0 * offsets[:, None] + offsets[None, :] * step_deg).ravel()
            stretch = 1.0 / max(math.cos(math.radians(lat0)), 0.2)
            lat = np.clip(lat0 + d_lat, -90.0, 90.0)
            lon = (lon0 + d_lon * stretch + 180.0) % 360.0 - 180.0
            local = self.cost(lat, lon)
            k = int(np.argmin(local))
            if local[k] < best_cost:
                lat0, lon0, best_cost = float(lat[k]), float(lon[k]), float(local[k])
        return lat0, lon0


def disc(lat_deg: float, lon_deg: float, radius_km: float, vertices: int = 64) -> BaseGeometry:
    """A spherical cap as a lon/lat polygon (antimeridian split); for display regions only."""
    azimuths = np.linspace(0.0, 2.0 * np.pi, vertices, endpoint=False)
    angle_rad = min(radius_km / EARTH_MEAN_RADIUS_KM, math.pi - 1e-6)
    lat_rad, lon_rad = sphere_destinations_rad(
        math.radians(lat_deg), math.radians(lon_deg), azimuths, angle_rad
    )
    ring = np.column_stack((np.degrees(lon_rad), np.degrees(lat_rad)))
    ring[:, 0] = (ring[:, 0] + 180.0) % 360.0 - 180.0
    ring = np.vstack((ring, ring[:1]))
    geometry = split_antimeridian([ring])
    return geometry if not geometry.is_empty else shapely.buffer(Point(lon_deg, lat_deg), 0.01)
