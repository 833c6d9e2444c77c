"""Stream chips through the latency model, an adversary and the fast verdict, in chunks.

Chunk k draws from `default_rng([seed, 3, k])`, so results are identical for any number of
workers. Tallies are fixed-size; only a fixed sample of chip-rounds is kept, to be replayed
through the real `geo.assess.assess` as a cross-check of the fast path.
"""

from __future__ import annotations

import logging
import multiprocessing
import resource
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from shapely.geometry.base import BaseGeometry

from geo.assess import assess
from geo.assessment import SolverParams
from geo.errors import GeoError
from geo.geodesy import distance_km, unit_vectors
from geo.licence import Licence
from geo.measurement import LandmarkRtt
from geo.region_measures import area_km2
from geo.regions import country
from sim.adversaries import RTT_ADVERSARIES, SmuggledBatch
from sim.fastpath import FastVerdict, fast_verdict
from sim.location import anomalous
from sim.metrics import CLASSES, SampleRecord, Tally
from sim.sites import offset_points, pairwise_km
from sim.world import World
from verifier.model import DEFAULT_POLICY

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]
_LIAR_SPREAD_KM = 300.0
_MIN_RATIO_DISTANCE_KM = 500.0  # the RTT/vacuum ratio is reported for paths longer than this

_FORKED: dict[str, World] = {}  # the parent's world, inherited by forked workers


@dataclass(frozen=True, slots=True)
class CrossCheck:
    rows: list[dict[str, Any]]
    regions: list[tuple[str, BaseGeometry | None, BaseGeometry | None]]  # class, sound, likely


@dataclass
class ChunkResult:
    chips: int
    tally: Tally
    check: CrossCheck  # this chunk's sampled chip-rounds replayed through assess
    check_s: float  # time spent in that replay


def run_chunk(world: World, chunk_index: int) -> ChunkResult:
    scenario = world.scenario
    start = chunk_index * scenario.chunk_size
    n = min(scenario.chunk_size, scenario.chips - start)
    rng = np.random.default_rng([scenario.seed, 3, chunk_index])
    model = scenario.latency
    tally = Tally(len(world.country_codes), scenario.adversary_params.relocate_rounds)

    site = rng.integers(0, len(world.chip_sites), n)
    smuggled = rng.random(n) < scenario.smuggled_fraction
    licence_country = world.site_country[site]
    home_lat, home_lon = _scatter(world, rng, site, licence_country, scenario.jitter_km)
    true_lat, true_lon = home_lat.copy(), home_lon.copy()
    rows = np.flatnonzero(smuggled)
    if world.liar is not None:
        liar = world.liar
        licence_country[rows] = world.site_country[liar.claimed_site]
        home_lat[rows] = world.site_lat[liar.claimed_site]
        home_lon[rows] = world.site_lon[liar.claimed_site]
        true_lat[rows], true_lon[rows] = offset_points(
            np.full(rows.size, liar.true_lat_deg),
            np.full(rows.size, liar.true_lon_deg),
            _LIAR_SPREAD_KM * np.sqrt(rng.random(rows.size)),
            rng.uniform(0.0, 2.0 * np.pi, rows.size),
        )
    else:
        destination = np.array([rng.choice(world.destinations[s]) for s in site[rows]], dtype=int)
        true_lat[rows], true_lon[rows] = _scatter(
            world, rng, destination, world.site_country[destination], scenario.jitter_km
        )
    truth_inside = world.inside(licence_country, true_lat, true_lon)
    # The staged class is the clean inspection at home before a relocation: judged at home.
    home_inside = world.inside(licence_country, home_lat, home_lon)
    true_xyz = unit_vectors(true_lat, true_lon)
    distance = pairwise_km(true_xyz, world.landmark_xyz)
    last_mile = model.draw_last_mile_ms(rng, (n, 1))
    rtt = model.rtt_ms(rng, distance, last_mile)

    honest_rows = np.flatnonzero(~smuggled)
    long_path = distance[honest_rows] > _MIN_RATIO_DISTANCE_KM
    vacuum_ms = 2.0 * distance[honest_rows] / 299_792.458 * 1000.0
    tally.add_ratios((rtt[honest_rows] / np.where(long_path, vacuum_ms, np.nan)).ravel())

    samples: list[SampleRecord] = []
    sampled = _sampled_offsets(world, start, n)

    def judge(rows_: IntArray, rtt_: FloatArray, class_index: int) -> IntArray:
        tally.add_answers(class_index, rtt_)
        if world.excluded.any():
            # The verifier drops answers from landmarks the audit proved misplaced.
            rtt_ = np.where(world.excluded, np.nan, rtt_)
        verdicts = np.empty(rows_.size, dtype=np.int64)
        areas = np.empty(rows_.size)
        for j, row in enumerate(rows_):
            outcome = fast_verdict(
                world.field, world.fast_params, world.cells[licence_country[row]], rtt_[j]
            )
            verdicts[j] = outcome.verdict
            areas[j] = outcome.sound_area_upper_km2
            if row in sampled and class_index != 2:
                samples.append(
                    _record(
                        world,
                        chip_index=start + int(row),
                        class_index=class_index,
                        country_index=licence_country[row],
                        lat=true_lat[row],
                        lon=true_lon[row],
                        inside=truth_inside[row],
                        rtt=rtt_[j],
                        verdict=FastVerdict(verdicts[j]),
                    )
                )
                sampled.discard(int(row))
        truth = home_inside if class_index == 2 else truth_inside
        tally.add(
            class_index,
            verdicts,
            truth[rows_],
            areas,
            licence_country[rows_] if class_index == 0 else None,
        )
        return verdicts

    judge(honest_rows, rtt[honest_rows], 0)
    home_distance = pairwise_km(unit_vectors(home_lat, home_lon), world.landmark_xyz)
    # rtt_anomaly on honest chips: anomaly_rounds rounds (this one and fresh draws) all anomalous.
    honest_alarm = anomalous(home_distance[honest_rows], rtt[honest_rows])
    for _ in range(DEFAULT_POLICY.anomaly_rounds - 1):
        again = model.rtt_ms(rng, distance[honest_rows], last_mile[honest_rows])
        honest_alarm &= anomalous(home_distance[honest_rows], again)
    tally.add_rtt_alerts(0, honest_alarm)
    if rows.size:
        batch = SmuggledBatch(
            rng=rng,
            model=model,
            params=scenario.adversary_params,
            chip_xyz=true_xyz[rows],
            home_xyz=unit_vectors(home_lat[rows], home_lon[rows]),
            landmark_xyz=world.landmark_xyz,
            last_mile_ms=last_mile[rows],
        )
        if scenario.adversary in ("relocate", "dark"):
            _relocation(
                world, batch=batch, rows=rows, abroad_km=distance[rows], judge=judge, tally=tally,
                home_distance_km=home_distance[rows],
            )
        else:
            adversary = RTT_ADVERSARIES.get(scenario.adversary, RTT_ADVERSARIES["none"])
            seen = adversary(batch, rtt[rows])
            judge(rows, seen, 1)
            alarm = anomalous(home_distance[rows], seen)
            for _ in range(DEFAULT_POLICY.anomaly_rounds - 1):
                fresh = model.rtt_ms(rng, distance[rows], last_mile[rows])
                alarm &= anomalous(home_distance[rows], adversary(batch, fresh))
            tally.add_rtt_alerts(1, alarm)
    # The replay runs here, so that with workers it runs in parallel with other chunks.
    check_started = time.perf_counter()
    check = cross_check(world, samples)
    return ChunkResult(n, tally, check, time.perf_counter() - check_started)


def _relocation(
    world: World,
    *,
    batch: SmuggledBatch,
    rows: IntArray,
    abroad_km: FloatArray,
    judge: Callable[[IntArray, FloatArray, int], IntArray],
    tally: Tally,
    home_distance_km: FloatArray,
) -> None:
    """A clean inspection at home, then rounds abroad (answering honestly, or dark)."""
    model, params = batch.model, batch.params
    home_rtt = model.rtt_ms(
        batch.rng, pairwise_km(batch.home_xyz, world.landmark_xyz), batch.last_mile_ms
    )
    judge(rows, home_rtt, 2)
    base = model.propagation_ms(abroad_km, model.draw_inflation(batch.rng, abroad_km.shape))
    base += batch.last_mile_ms
    not_verified = np.zeros(rows.size, dtype=np.int64)
    alert = np.zeros(rows.size, dtype=np.int64)
    silent = np.zeros(rows.size, dtype=np.int64)
    streak = np.zeros(rows.size, dtype=np.int64)  # anomalous answered rounds in a row
    rtt_alert = np.zeros(rows.size, dtype=np.int64)
    dark = world.scenario.adversary == "dark"
    for round_number in range(1, params.relocate_rounds + 1):
        rtt = np.full(base.shape, np.nan) if dark else model.draw_round_ms(batch.rng, base)
        verdicts = judge(rows, rtt, 1)
        silent = np.where(verdicts == FastVerdict.DARK, silent + 1, 0)
        flagged = verdicts != FastVerdict.VERIFIED
        alarmed = (verdicts == FastVerdict.VIOLATION) | (silent >= params.dark_window_rounds)
        not_verified[(not_verified == 0) & flagged] = round_number
        alert[(alert == 0) & alarmed] = round_number
        answered = np.isfinite(rtt).any(axis=1)
        odd = anomalous(home_distance_km, rtt)
        streak = np.where(answered, np.where(odd, streak + 1, 0), streak)
        rtt_alert[(rtt_alert == 0) & (streak >= DEFAULT_POLICY.anomaly_rounds)] = round_number
    tally.add_detection(not_verified, alert)
    tally.add_rtt_detection(rtt_alert)
    tally.add_rtt_alerts(1, rtt_alert > 0)


def _scatter(
    world: World,
    rng: np.random.Generator,
    site: IntArray,
    country_index: IntArray,
    jitter_km: float,
) -> tuple[FloatArray, FloatArray]:
    """Points near each site, kept inside the site's country (else the site itself)."""
    lat, lon = offset_points(
        world.site_lat[site],
        world.site_lon[site],
        jitter_km * np.sqrt(rng.random(site.size)),
        rng.uniform(0.0, 2.0 * np.pi, site.size),
    )
    ok = world.inside(country_index, lat, lon)
    return np.where(ok, lat, world.site_lat[site]), np.where(ok, lon, world.site_lon[site])


def _sampled_offsets(world: World, start: int, n: int) -> set[int]:
    lo, hi = np.searchsorted(world.sample_indices, [start, start + n])
    return {int(i) - start for i in world.sample_indices[lo:hi]}


def _record(
    world: World,
    *,
    chip_index: int,
    class_index: int,
    country_index: np.int64,
    lat: float,
    lon: float,
    inside: bool,
    rtt: FloatArray,
    verdict: FastVerdict,
) -> SampleRecord:
    return SampleRecord(
        chip_index=chip_index,
        class_name=CLASSES[class_index],
        licence_iso3=world.country_codes[int(country_index)],
        true_lat_deg=float(lat),
        true_lon_deg=float(lon),
        truth_inside=bool(inside),
        rtt_ms=tuple(float(x) for x in rtt),
        fast_verdict=verdict.name.lower(),
    )


def _worker_chunk(chunk_index: int) -> ChunkResult:
    return run_chunk(_FORKED["world"], chunk_index)


def stream_chunks(world: World) -> Iterator[ChunkResult]:
    """Chunk results in order; with workers > 1, computed by forked processes."""
    scenario = world.scenario
    count = -(-scenario.chips // scenario.chunk_size)
    if scenario.workers == 1 or count == 1:
        for index in range(count):
            yield run_chunk(world, index)
        return
    _FORKED["world"] = world
    try:
        context = multiprocessing.get_context("fork")
        with context.Pool(scenario.workers) as pool:
            yield from pool.imap(_worker_chunk, range(count))
    finally:
        _FORKED.clear()


def cross_check(world: World, samples: list[SampleRecord], keep_regions: int = 6) -> CrossCheck:
    """Replay sampled chip-rounds through the real geo.assess.assess."""
    params = SolverParams(resolution_km=world.scenario.resolution_km)
    rows: list[dict[str, Any]] = []
    regions: list[tuple[str, BaseGeometry | None, BaseGeometry | None]] = []
    for record in samples:
        measurements = [
            LandmarkRtt(lid, float(lat), float(lon), rtt)
            for lid, lat, lon, rtt in zip(
                world.landmark_ids, world.claimed_lat, world.claimed_lon, record.rtt_ms, strict=True
            )
            if np.isfinite(rtt)
        ]
        row: dict[str, Any] = {
            "chip": record.chip_index,
            "class": record.class_name,
            "licence": record.licence_iso3,
            "truth_inside": record.truth_inside,
            "fast": record.fast_verdict,
        }
        if not measurements:
            row["assess"] = "dark"
            rows.append(row)
            continue
        try:
            licence = Licence(allowed=(country(record.licence_iso3),), prohibited=())
            result = assess(measurements, licence, world.calibration, params)
        except GeoError as exc:
            row["assess"] = "error"
            row["error"] = str(exc)
            rows.append(row)
            continue
        row["assess"] = None if result.verdict is None else result.verdict.value
        row["sound_area_km2"] = result.sound_area_km2
        row["likely_area_km2"] = area_km2(result.likely_region)
        if result.estimate_lat_deg is not None and result.estimate_lon_deg is not None:
            row["error_km"] = distance_km(
                record.true_lat_deg,
                record.true_lon_deg,
                result.estimate_lat_deg,
                result.estimate_lon_deg,
            )
        rows.append(row)
        if len(regions) < keep_regions and result.sound_region is not None:
            regions.append((record.class_name, result.sound_region, result.likely_region))
    return CrossCheck(rows, regions)


def merge_checks(checks: list[CrossCheck], keep_regions: int = 6) -> CrossCheck:
    """Chunks' replays in chunk order, as one replay of all their samples would give."""
    rows = [row for check in checks for row in check.rows]
    regions = [region for check in checks for region in check.regions][:keep_regions]
    return CrossCheck(rows, regions)


def summarise_cross_check(check: CrossCheck) -> dict[str, Any]:
    rows = check.rows
    pairs: dict[str, int] = {}
    for row in rows:
        key = f"{row['fast']}->{row['assess']}"
        pairs[key] = pairs.get(key, 0) + 1
    fast_more_permissive = sum(
        1
        for r in rows
        if (r["fast"] == "verified" and r["assess"] != "verified")
        or (r["fast"] == "violation" and r["assess"] != "violation")
    )
    agree = sum(1 for r in rows if r["fast"] == r["assess"])
    errors = sorted(r["error_km"] for r in rows if "error_km" in r)
    honest_errors = sorted(
        r["error_km"] for r in rows if "error_km" in r and r["class"] == "honest"
    )
    return {
        "sampled": len(rows),
        "agreement": agree / len(rows) if rows else None,
        "fast_more_permissive": fast_more_permissive,
        "pairs": dict(sorted(pairs.items())),
        "assess_false_verifications": sum(
            1 for r in rows if r["assess"] == "verified" and not r["truth_inside"]
        ),
        "assess_false_violations": sum(
            1 for r in rows if r["assess"] == "violation" and r["truth_inside"]
        ),
        "calibrated_error_km": {
            "all": _quantiles(errors),
            "honest": _quantiles(honest_errors),
            "honest_sorted": honest_errors,
        },
        "sound_area_km2": _quantiles(
            sorted(r["sound_area_km2"] for r in rows if "sound_area_km2" in r)
        ),
        "likely_area_km2": _quantiles(
            sorted(r["likely_area_km2"] for r in rows if "likely_area_km2" in r)
        ),
        "errors": [r for r in rows if r["assess"] == "error"],
    }


def _quantiles(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    array = np.asarray(values)
    return {f"p{q:02d}": float(np.percentile(array, q)) for q in (5, 25, 50, 75, 95)}


def peak_memory_mib() -> dict[str, float]:
    """Peak resident set size (Linux reports KiB) of this process and of reaped workers."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0
    return {"self_mib": own, "children_max_mib": children}


def now_s() -> float:
    return time.perf_counter()
