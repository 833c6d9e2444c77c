"""Leave-one-out evaluation of the calibrated tier against classic CBG, plus the landmark audit.

    python -m benchmarks.calibration_eval [--seed 1] [--targets N]
    python -m benchmarks.calibration_eval --servers servers.csv --pings pings.csv [--misplaced a,b]

Synthetic mode builds a mesh between the cities in benchmarks/data/cities.csv with
RTT = 2·d·inflation / (2/3 c) + detour + last mile at both ends + heavy-tailed queueing, where the
per-path inflation is ~1.5–3.5, and moves a few landmarks' *claimed* coordinates (a swapped pair,
Guatemala City <-> Panama City, and one server listed in the wrong city). Real mode reads
`servers.csv` (id,lat,lon) and `pings.csv` (a,b,rtt_ms; the minimum per pair is used).

For every target: calibrate on the mesh among the other landmarks only, then estimate from the
target's RTTs to them with (1) CalibrationModel and (2) CBG (bestline per landmark, intersect the
discs, centroid). Errors are measured against the true position for honest targets. Prints JSON.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from geo.audit import audit_landmarks
from geo.calibration import CalibrationModel, CalibrationSample, bestline
from geo.constants import EARTH_MEAN_RADIUS_KM, PLAUSIBLE_SPEED_KM_PER_S
from geo.geodesy import sphere_destinations_rad, sphere_distance_km, unit_vectors
from geo.measurement import LandmarkRtt

FloatArray = npt.NDArray[np.float64]
CITIES = Path(__file__).resolve().parent / "data" / "cities.csv"
FIBRE_KM_PER_MS = PLAUSIBLE_SPEED_KM_PER_S / 1000.0


@dataclass(frozen=True, slots=True)
class Dataset:
    ids: tuple[str, ...]
    true_deg: FloatArray  # (n, 2) lat, lon where the server really is
    claimed_deg: FloatArray  # (n, 2) what its listing says
    rtt_ms: FloatArray  # (n, n), NaN where unmeasured
    misplaced: frozenset[str]


def synthetic(seed: int) -> Dataset:
    with CITIES.open() as handle:
        rows = list(csv.DictReader(handle))
    rng = np.random.default_rng(seed)
    ids = tuple(r["id"] for r in rows)
    true = np.array([[float(r["lat"]), float(r["lon"])] for r in rows])
    n = len(ids)
    dist = sphere_distance_km(
        true[:, None, 0], true[:, None, 1], true[None, :, 0], true[None, :, 1]
    )
    connectivity = rng.uniform(0.9, 1.3, n)  # some places are simply worse connected
    inflation = (1.4 + rng.gamma(2.0, 0.3, (n, n))) * np.sqrt(np.outer(connectivity, connectivity))
    inflation = np.minimum((inflation + inflation.T) / 2.0, 4.0)
    detour_km = rng.exponential(150.0, (n, n))
    detour_km = (detour_km + detour_km.T) / 2.0
    last_mile_ms = rng.uniform(0.2, 3.0, n)
    queue_ms = rng.exponential(0.5, (n, n)) + (rng.random((n, n)) < 0.05) * rng.exponential(
        20.0, (n, n)
    )
    queue_ms = np.minimum(queue_ms, queue_ms.T)  # best of both directions' probes
    rtt = (
        2.0 * (dist * inflation + detour_km) / FIBRE_KM_PER_MS
        + last_mile_ms[:, None]
        + last_mile_ms[None, :]
        + queue_ms
    )
    np.fill_diagonal(rtt, np.nan)
    claimed = true.copy()
    index = {name: i for i, name in enumerate(ids)}
    gt, pa = index["guatemala-city"], index["panama-city"]
    claimed[[gt, pa]] = claimed[[pa, gt]]
    claimed[index["lagos"]] = true[index["london"]]  # a Lagos server listed in London
    misplaced = frozenset({"guatemala-city", "panama-city", "lagos"})
    return Dataset(ids, true, claimed, rtt, misplaced)


def from_files(servers: Path, pings: Path, misplaced: frozenset[str]) -> Dataset:
    with servers.open() as handle:
        rows = list(csv.DictReader(handle))
    ids = tuple(r["id"] for r in rows)
    positions = np.array([[float(r["lat"]), float(r["lon"])] for r in rows])
    index = {name: i for i, name in enumerate(ids)}
    rtt = np.full((len(ids), len(ids)), np.nan)
    with pings.open() as handle:
        for row in csv.DictReader(handle):
            a, b = index.get(row["a"]), index.get(row["b"])
            if a is None or b is None or a == b:
                continue
            value = float(row["rtt_ms"])
            rtt[a, b] = rtt[b, a] = np.fmin(rtt[a, b], value)
    # The listed positions are all we know; misplaced servers (if named) are only scored.
    return Dataset(ids, positions, positions, rtt, misplaced)


def cbg_estimate(landmarks_deg: FloatArray, max_km: FloatArray) -> tuple[float, float]:
    """CBG: centroid of the intersection of the bestline discs (sampled on a polar grid)."""
    anchor = int(np.argmin(max_km))
    radii = np.linspace(0.0, max(max_km[anchor], 1.0), 40)[1:]
    azimuths = np.linspace(0.0, 2.0 * np.pi, 72, endpoint=False)
    lat_parts, lon_parts, weights = [], [], []
    for radius_km in radii:
        la, lo = sphere_destinations_rad(
            math.radians(landmarks_deg[anchor, 0]),
            math.radians(landmarks_deg[anchor, 1]),
            azimuths,
            radius_km / EARTH_MEAN_RADIUS_KM,
        )
        lat_parts.append(np.degrees(la))
        lon_parts.append(np.degrees(lo))
        weights.append(np.full(len(azimuths), radius_km))  # polar cells grow with the radius
    lat, lon, weight = np.concatenate(lat_parts), np.concatenate(lon_parts), np.concatenate(weights)
    dist = sphere_distance_km(
        lat[:, None], lon[:, None], landmarks_deg[None, :, 0], landmarks_deg[None, :, 1]
    )
    excess = np.max(dist - max_km[None, :], axis=1)
    # CBG with no common intersection grows every disc until one appears: least worst excess.
    feasible = excess <= max(0.0, float(excess.min()))
    vectors = unit_vectors(lat[feasible], lon[feasible]) * weight[feasible, None]
    mean = vectors.sum(axis=0)
    return (
        math.degrees(math.atan2(mean[2], math.hypot(mean[0], mean[1]))),
        math.degrees(math.atan2(mean[1], mean[0])),
    )


def evaluate(data: Dataset, targets: int) -> dict[str, Any]:
    n = len(data.ids)
    claimed_dist = sphere_distance_km(
        data.claimed_deg[:, None, 0],
        data.claimed_deg[:, None, 1],
        data.claimed_deg[None, :, 0],
        data.claimed_deg[None, :, 1],
    )
    honest = [i for i in range(n) if data.ids[i] not in data.misplaced]
    step = max(1, len(honest) // targets) if targets else 1
    chosen = honest[::step][: targets or None]
    ours_km, cbg_km, inside_likely, sound_ok, sound_checked = [], [], 0, 0, 0
    audit = audit_landmarks(
        {
            data.ids[i]: (float(data.claimed_deg[i, 0]), float(data.claimed_deg[i, 1]))
            for i in range(n)
        },
        [
            (data.ids[a], data.ids[b], float(data.rtt_ms[a, b]))
            for a in range(n)
            for b in range(a + 1, n)
            if not math.isnan(data.rtt_ms[a, b])
        ],
    )
    flagged = {k for k, v in audit.items() if v.status != "ok"}
    assess = _assess_or_none()
    started = time.perf_counter()
    for t in chosen:
        others = [i for i in range(n) if i != t and not math.isnan(data.rtt_ms[t, i])]
        samples = [
            CalibrationSample(data.ids[a], float(claimed_dist[a, b]), float(data.rtt_ms[a, b]))
            for a in others
            for b in others
            if a != b and not math.isnan(data.rtt_ms[a, b])
        ]
        model = CalibrationModel.fit(samples)
        measurements = [
            LandmarkRtt(
                data.ids[i],
                float(data.claimed_deg[i, 0]),
                float(data.claimed_deg[i, 1]),
                float(data.rtt_ms[t, i]),
            )
            for i in others
        ]
        truth = data.true_deg[t]
        estimate = model.estimate(measurements)
        ours_km.append(_km(truth, (estimate.lat_deg, estimate.lon_deg)))
        inside_likely += ours_km[-1] <= estimate.error_radius_km
        cbg_km.append(
            _km(
                truth,
                cbg_estimate(data.claimed_deg[others], _cbg_max_km(data, others, t, claimed_dist)),
            )
        )
        if assess is not None:
            sound_checked += 1
            # The intended pipeline: landmarks the audit flags are left out of the proof.
            trusted = [m for m in measurements if m.landmark_id not in flagged]
            sound_ok += _sound_contains(assess, trusted, truth)
    hits = flagged & data.misplaced
    return {
        "landmarks": n,
        "targets": len(chosen),
        "ours_median_km": round(float(np.median(ours_km)), 1),
        "ours_p90_km": round(float(np.percentile(ours_km, 90)), 1),
        "cbg_median_km": round(float(np.median(cbg_km)), 1),
        "cbg_p90_km": round(float(np.percentile(cbg_km, 90)), 1),
        "likely_region_coverage": round(inside_likely / len(chosen), 3),
        "sound_region_contains_truth": sound_ok if assess is not None else None,
        "sound_region_checked": sound_checked,
        "audit_flagged": sorted(flagged),
        "audit_precision": round(len(hits) / len(flagged), 3) if flagged else None,
        "audit_recall": round(len(hits) / len(data.misplaced), 3) if data.misplaced else None,
        "seconds": round(time.perf_counter() - started, 1),
    }


def _cbg_max_km(
    data: Dataset, others: list[int], target: int, claimed_dist: FloatArray
) -> FloatArray:
    max_km = np.empty(len(others))
    for k, a in enumerate(others):
        peers = [b for b in others if b != a and not math.isnan(data.rtt_ms[a, b])]
        slope, intercept = bestline(claimed_dist[a, peers], data.rtt_ms[a, peers])
        max_km[k] = max(data.rtt_ms[target, a] - intercept, 0.0) / slope
    return max_km


def _km(a: Sequence[float] | FloatArray, b: Sequence[float] | FloatArray) -> float:
    return float(sphere_distance_km(a[0], a[1], b[0], b[1]))


def _assess_or_none() -> Any:
    try:
        from geo.verdict import assess
    except ImportError:
        return None
    return assess


def _sound_contains(assess: Any, measurements: list[LandmarkRtt], truth: FloatArray) -> bool:
    from shapely.geometry import Point

    region = assess(measurements).sound_region
    return region is not None and bool(region.covers(Point(float(truth[1]), float(truth[0]))))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--targets", type=int, default=0, help="evaluate N targets (0: all)")
    parser.add_argument("--servers", type=Path, help="real data: CSV id,lat,lon")
    parser.add_argument("--pings", type=Path, help="real data: CSV a,b,rtt_ms")
    parser.add_argument("--misplaced", default="", help="comma-separated known-misplaced ids")
    args = parser.parse_args(argv)
    if (args.servers is None) != (args.pings is None):
        parser.error("--servers and --pings go together")
    if args.servers is not None:
        misplaced = frozenset(filter(None, args.misplaced.split(",")))
        data = from_files(args.servers, args.pings, misplaced)
        source: dict[str, Any] = {"servers": str(args.servers), "pings": str(args.pings)}
    else:
        data = synthetic(args.seed)
        source = {"synthetic_seed": args.seed, "misplaced": sorted(data.misplaced)}
    result = {"source": source, **evaluate(data, args.targets)}
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
