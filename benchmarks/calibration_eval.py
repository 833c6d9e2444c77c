"""Leave-one-out evaluation of the calibrated estimate and the landmark audit, on every RTT set.

    python -m benchmarks.calibration_eval [--seed 1] [--synthetic-targets 45]
        [--synthetic-audit 8] [--audit-directions 2] [--sets NAME,...]
    python -m benchmarks.calibration_eval --servers servers.csv --pings pings.csv

One run covers every set present (docs/geo.md, "Accuracy on real RTTs"):
- `azure-p50-2026-07`: Azure's published monthly P50 inter-region RTTs (shipped, CC BY 4.0);
- `ibm-vpc-avg-2026-07`: IBM Cloud VPC weekly 30-day averages, 5 windows (rebuilt locally by
  scripts/build_ibm_latency.py; skipped when absent);
- `synthetic`: a 225-city mesh, RTT = 2·d·inflation / (2/3 c) + detour + last mile at both ends +
  heavy-tailed queueing (per-path inflation ~1.5–3.5), with a swapped pair (Guatemala City <->
  Panama City) and a Lagos server listed in London;
- any `--servers`/`--pings` files (id,lat,lon and [window,]a,b,rtt_ms).

Estimates: for every target, calibrate on the mesh among the other landmarks only, then estimate
from the target's RTTs to them with (1) CalibrationModel, (2) classic CBG (per-landmark bestline
discs, centroid of their intersection) and (3) shortest ping (the nearest landmark by RTT). The
errors are against the true position; coverage is the share of targets inside the likely region
and inside the plausible (2/3 c) region. Audit: the honest listing (false suspects), then each
audited landmark moved by every offset in AUDIT_OFFSETS_KM in `--audit-directions` random
directions, one at a time (recall), with the position test's log-likelihood ratios of honest and
moved landmarks next to its threshold. A suspect must hold in every window of a set (as the
verifier requires); `impossible` in any one. Prints JSON with wall and CPU time and the load.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
from shapely.geometry import Point

from benchmarks import rtt_sets
from geo.assess import assess
from geo.audit import audit_landmarks
from geo.audit_position import POSITION_LOG_RATIO, POSITION_MIN_KM
from geo.calibration import CalibrationModel, bestline
from geo.constants import EARTH_MEAN_RADIUS_KM, PLAUSIBLE_SPEED_KM_PER_S
from geo.geodesy import sphere_destinations_rad, sphere_distance_km, unit_vectors
from geo.measurement import LandmarkRtt

FloatArray = npt.NDArray[np.float64]
CITIES = Path(__file__).resolve().parent / "data" / "cities.csv"
FIBRE_KM_PER_MS = PLAUSIBLE_SPEED_KM_PER_S / 1000.0
AUDIT_OFFSETS_KM = (300.0, 600.0, 1000.0, 3000.0)


@dataclass(frozen=True, slots=True)
class Dataset:
    name: str
    ids: tuple[str, ...]
    true_deg: FloatArray  # (n, 2) lat, lon where the server really is
    claimed_deg: FloatArray  # (n, 2) what its listing says
    windows: tuple[FloatArray, ...]  # each (n, n) RTT ms, NaN where unmeasured
    rtt_ms: FloatArray  # best RTT per pair over all windows (what a calibration sees)
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
    return Dataset("synthetic", ids, true, claimed, (rtt,), rtt, misplaced)


def from_rtt_set(real: rtt_sets.RttSet) -> Dataset:
    # The listed positions are all we know: they are the truth the estimates are scored against.
    best = np.asarray(np.fmin.reduce(np.stack(real.windows), axis=0), dtype=np.float64)
    listed = real.listed_deg
    return Dataset(real.name, real.ids, listed, listed, real.windows, best, frozenset())


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


def evaluate_estimates(data: Dataset, targets: int) -> dict[str, Any]:
    """Leave-one-out errors of ours, CBG and shortest ping, and coverage, over honest targets."""
    n = len(data.ids)
    rtt = data.rtt_ms
    claimed_dist = sphere_distance_km(
        data.claimed_deg[:, None, 0],
        data.claimed_deg[:, None, 1],
        data.claimed_deg[None, :, 0],
        data.claimed_deg[None, :, 1],
    )
    honest = [i for i in range(n) if data.ids[i] not in data.misplaced]
    step = max(1, len(honest) // targets) if targets else 1
    chosen = honest[::step][: targets or None]
    errors: dict[str, list[float]] = {"ours": [], "cbg": [], "shortest_ping": []}
    inside_likely = inside_plausible = inside_sound = 0
    started = time.perf_counter()
    id_array = np.asarray(data.ids, dtype=object)
    for t in chosen:
        others = [i for i in range(n) if i != t and not math.isnan(rtt[t, i])]
        among = np.asarray(others)
        sub = rtt[np.ix_(among, among)]
        a, b = np.nonzero(np.isfinite(sub))
        model = CalibrationModel.fit_arrays(
            list(id_array[among[a]]), claimed_dist[among[a], among[b]], sub[a, b]
        )
        measurements = [
            LandmarkRtt(
                data.ids[i],
                float(data.claimed_deg[i, 0]),
                float(data.claimed_deg[i, 1]),
                float(rtt[t, i]),
            )
            for i in others
        ]
        truth = data.true_deg[t]
        estimate = model.estimate(measurements)
        errors["ours"].append(_km(truth, (estimate.lat_deg, estimate.lon_deg)))
        inside_likely += errors["ours"][-1] <= estimate.error_radius_km
        max_km = _cbg_max_km(rtt, others, t, claimed_dist)
        errors["cbg"].append(_km(truth, cbg_estimate(data.claimed_deg[others], max_km)))
        nearest = others[int(np.argmin(rtt[t, others]))]
        errors["shortest_ping"].append(_km(truth, data.claimed_deg[nearest]))
        assessment = assess(measurements)
        point = Point(float(truth[1]), float(truth[0]))
        region = assessment.plausible_region
        inside_plausible += region is not None and bool(region.covers(point))
        sound = assessment.sound_region
        inside_sound += sound is not None and bool(sound.covers(point))
    result: dict[str, Any] = {"landmarks": n, "targets": len(chosen)}
    for name, values in errors.items():
        result[f"{name}_median_km"] = round(float(np.median(values)), 1)
        result[f"{name}_p90_km"] = round(float(np.percentile(values, 90)), 1)
    result["ours_vs_cbg_median"] = round(result["ours_median_km"] / result["cbg_median_km"], 3)
    result["likely_region_coverage"] = round(inside_likely / len(chosen), 3)
    result["plausible_region_coverage"] = round(inside_plausible / len(chosen), 3)
    result["sound_region_contains_truth"] = f"{inside_sound}/{len(chosen)}"
    result["estimate_seconds"] = round(time.perf_counter() - started, 1)
    return result


def evaluate_audit(data: Dataset, landmarks: int, seeds: int, seed: int) -> dict[str, Any]:
    """False suspects on the listing as published, then recall of injected misplacements.

    Every audited landmark is moved by each offset of AUDIT_OFFSETS_KM in `seeds` random
    directions, one at a time, and the whole audit runs again: recall is the share of moves after
    which that landmark is flagged; `collateral` counts other landmarks newly flagged.
    """
    started = time.perf_counter()
    n = len(data.ids)
    flagged, honest_checks = _audit(data, data.claimed_deg)
    honest = [i for i in range(n) if data.ids[i] not in data.misplaced]
    false_suspects = sorted(data.ids[i] for i in honest if flagged.get(data.ids[i]) == "suspect")
    false_impossible = sorted(
        data.ids[i] for i in honest if flagged.get(data.ids[i]) == "impossible"
    )
    rng = np.random.default_rng(seed)
    step = max(1, len(honest) // landmarks) if landmarks else 1
    chosen = honest[::step][: landmarks or None]
    caught: dict[float, list[bool]] = {offset_km: [] for offset_km in AUDIT_OFFSETS_KM}
    by_position: dict[float, list[bool]] = {offset_km: [] for offset_km in AUDIT_OFFSETS_KM}
    ratios: dict[float, list[float]] = {offset_km: [] for offset_km in AUDIT_OFFSETS_KM}
    collateral: dict[str, int] = {}
    for _ in range(seeds):
        for i in chosen:
            for offset_km in AUDIT_OFFSETS_KM:
                claimed = data.claimed_deg.copy()
                claimed[i] = _moved(claimed[i], offset_km, rng.uniform(0.0, 2.0 * math.pi))
                result, checks = _audit(data, claimed)
                landmark_id = data.ids[i]
                caught[offset_km].append(landmark_id in result)
                by_position[offset_km].append(checks.get(landmark_id, (0.0, 0.0, False))[2])
                ratios[offset_km].append(checks.get(landmark_id, (math.nan, 0.0, False))[0])
                for k, status in result.items():
                    if k != landmark_id and k not in flagged:
                        collateral[status] = collateral.get(status, 0) + 1
    known = [k for k in data.misplaced if k in flagged]
    honest_ratios = [honest_checks[data.ids[i]][0] for i in honest if data.ids[i] in honest_checks]
    return {
        "false_suspects": len(false_suspects),
        "false_suspect_ids": false_suspects,
        "false_impossible": len(false_impossible),
        "known_misplaced_caught": f"{len(known)}/{len(data.misplaced)}",
        "injected_landmarks": len(chosen),
        "injected_directions_per_offset": seeds,
        "injected_recall": {_key(o): round(float(np.mean(v)), 3) for o, v in caught.items()},
        "injected_recall_position_test": {
            _key(o): round(float(np.mean(v)), 3) for o, v in by_position.items()
        },
        "injected_recall_300_km_or_more": round(
            float(np.mean([hit for v in caught.values() for hit in v])), 3
        ),
        # Other landmarks newly flagged while one was moved, by status: a move that breaks a
        # speed-of-light bound proves only that one of the pair is wrong, and a partner may get
        # the blame; a moved partner also distorts its neighbours' position fits.
        "collateral_flags_during_injection": collateral,
        "position_log_ratio": {
            "threshold": POSITION_LOG_RATIO,
            "min_distance_km": POSITION_MIN_KM,
            "honest": _quantiles(honest_ratios),
            "honest_max_beyond_min_distance": _honest_max(honest_checks, honest, data.ids),
            **{f"injected_{_key(o)}": _quantiles(v) for o, v in ratios.items()},
        },
        "windows": len(data.windows),
        "audit_seconds": round(time.perf_counter() - started, 1),
    }


def _key(offset_km: float) -> str:
    return f"{offset_km:.0f}_km"


def _quantiles(values: Sequence[float]) -> dict[str, float]:
    finite = np.asarray([v for v in values if math.isfinite(v)], dtype=np.float64)
    if len(finite) == 0:
        return {}
    p50, p90, top = np.percentile(finite, [50, 90, 100])
    return {"p50": round(float(p50), 2), "p90": round(float(p90), 2), "max": round(float(top), 2)}


def _honest_max(
    checks: dict[str, tuple[float, float, bool]], honest: list[int], ids: tuple[str, ...]
) -> float:
    """Highest honest ratio whose best position is far enough to count (the threshold's floor)."""
    scores = [
        checks[ids[i]][0]
        for i in honest
        if ids[i] in checks and checks[ids[i]][1] >= POSITION_MIN_KM
    ]
    return round(max(scores, default=0.0), 2)


def _moved(position_deg: FloatArray, offset_km: float, bearing_rad: float) -> tuple[float, float]:
    lat, lon = sphere_destinations_rad(
        math.radians(position_deg[0]),
        math.radians(position_deg[1]),
        np.array([bearing_rad]),
        offset_km / EARTH_MEAN_RADIUS_KM,
    )
    return math.degrees(lat[0]), (math.degrees(lon[0]) + 180.0) % 360.0 - 180.0


def _audit(
    data: Dataset, claimed_deg: FloatArray
) -> tuple[dict[str, str], dict[str, tuple[float, float, bool]]]:
    """Landmarks impossible in any window or suspect in every window -> their status; and per
    landmark the position test in its weakest window: (log ratio, best-fit distance km, whether
    it was inconsistent in every window)."""
    positions = {
        data.ids[i]: (float(claimed_deg[i, 0]), float(claimed_deg[i, 1]))
        for i in range(len(data.ids))
    }
    impossible: set[str] = set()
    suspect_windows: dict[str, int] = {}
    checks: dict[str, tuple[float, float, bool]] = {}
    n = len(data.ids)
    upper_a, upper_b = np.triu_indices(n, 1)
    for window in data.windows:
        measured = np.isfinite(window[upper_a, upper_b])
        mesh = [
            (data.ids[a], data.ids[b], float(window[a, b]))
            for a, b in zip(upper_a[measured], upper_b[measured], strict=True)
        ]
        for landmark_id, audit in audit_landmarks(positions, mesh).items():
            if audit.status == "impossible":
                impossible.add(landmark_id)
            elif audit.status == "suspect":
                suspect_windows[landmark_id] = suspect_windows.get(landmark_id, 0) + 1
            check = audit.position_check
            if check is not None:
                ratio, far, every = checks.get(landmark_id, (math.inf, math.inf, True))
                checks[landmark_id] = (
                    min(ratio, check.log_likelihood_ratio),
                    min(far, check.distance_km),
                    every and check.inconsistent,
                )
    persistent = {k for k, v in suspect_windows.items() if v == len(data.windows)}
    status = {k: "impossible" for k in impossible} | {k: "suspect" for k in persistent - impossible}
    return status, checks


def _cbg_max_km(
    rtt: FloatArray, others: list[int], target: int, claimed_dist: FloatArray
) -> FloatArray:
    max_km = np.empty(len(others))
    for k, a in enumerate(others):
        peers = [b for b in others if b != a and not math.isnan(rtt[a, b])]
        slope, intercept = bestline(claimed_dist[a, peers], rtt[a, peers])
        max_km[k] = max(rtt[target, a] - intercept, 0.0) / slope
    return max_km


def _km(a: Sequence[float] | FloatArray, b: Sequence[float] | FloatArray) -> float:
    return float(sphere_distance_km(a[0], a[1], b[0], b[1]))


def _datasets(args: argparse.Namespace) -> list[Dataset]:
    sets = [synthetic(args.seed)] + [from_rtt_set(s) for s in rtt_sets.available()]
    if args.servers is not None:
        sets.append(from_rtt_set(rtt_sets.windowed("files", args.servers, args.pings)))
    if args.sets:
        wanted = set(args.sets.split(","))
        sets = [s for s in sets if s.name in wanted]
    return sets


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--synthetic-targets",
        type=int,
        default=45,
        help="leave-one-out targets on the synthetic mesh (0: all 222)",
    )
    parser.add_argument(
        "--synthetic-audit",
        type=int,
        default=8,
        help="synthetic landmarks to misplace for the audit recall (0: all)",
    )
    parser.add_argument(
        "--audit-directions",
        type=int,
        default=2,
        help="random directions per landmark and offset for the injected misplacements",
    )
    parser.add_argument("--sets", default="", help="comma-separated set names (default: all)")
    parser.add_argument("--servers", type=Path, help="another set: CSV id,lat,lon")
    parser.add_argument("--pings", type=Path, help="another set: CSV [window,]a,b,rtt_ms")
    args = parser.parse_args(argv)
    if (args.servers is None) != (args.pings is None):
        parser.error("--servers and --pings go together")
    started, cpu_started = time.perf_counter(), time.process_time()
    load_before = os.getloadavg()[0]
    results: dict[str, Any] = {}
    for data in _datasets(args):
        is_synthetic = data.name == "synthetic"
        results[data.name] = {
            "estimate": evaluate_estimates(data, args.synthetic_targets if is_synthetic else 0),
            "audit": evaluate_audit(
                data,
                args.synthetic_audit if is_synthetic else 0,
                args.audit_directions,
                args.seed,
            ),
        }
        print(f"{data.name}: done", file=sys.stderr)
    report = {
        "seed": args.seed,
        "seconds": round(time.perf_counter() - started, 1),
        "cpu_seconds": round(time.process_time() - cpu_started, 1),
        "load_average_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
        "sets": results,
    }
    json.dump(report, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
