"""Fleet planning: choose K landmark sites that verify the most honest chips in given countries.

Greedy with lazy evaluation (CELF): a candidate's last gain is an upper bound on its next one
when the objective is submodular. Verification needs several caps together, so it is not
exactly submodular; lazy greedy is then a heuristic, and the report gives each pick's true
marginal gain. Ties (early on, when no chip can be verified yet) are broken by a proxy: the
mean log10 of the fast path's sound-area bound, smaller being better.
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from benchmarks.sim.errors import ScenarioError
from benchmarks.sim.fastpath import (
    FastParams,
    FastVerdict,
    LandmarkField,
    build_grid,
    classify_cells,
    fast_verdict,
    land_touches,
)
from benchmarks.sim.latency import LatencyModel
from benchmarks.sim.sites import Site, pairwise_km, unique_places
from geo.geodesy import unit_vectors
from geo.regions import country
from geo.solver import FLOAT_MARGIN_KM

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
_PROXY_WEIGHT = 1e-3  # the area proxy only breaks ties between equal verification rates


@dataclass(frozen=True, slots=True)
class PlanStep:
    site: Site
    verified_rate: float
    gain: float
    mean_log10_area_km2: float

    def to_json(self) -> dict[str, Any]:
        return {
            "site": self.site.name,
            "iso3": self.site.iso3,
            "lat_deg": self.site.lat_deg,
            "lon_deg": self.site.lon_deg,
            "verified_rate": self.verified_rate,
            "marginal_gain": self.gain,
            "mean_log10_sound_area_km2": self.mean_log10_area_km2,
        }


@dataclass(frozen=True, slots=True)
class PlanRequest:
    countries: tuple[str, ...]
    k: int
    chips_per_country: int = 12
    candidate_radius_km: float = 3000.0
    grid_km: float = 150.0
    robust_landmarks: int = 1
    resolution_km: float = 5.0
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.countries:
            raise ScenarioError("name at least one licensed country")
        if self.k < 2:
            raise ScenarioError("k must be >= 2: a verdict needs two landmarks")
        if self.chips_per_country < 1:
            raise ScenarioError("chips_per_country must be >= 1")


def plan(
    request: PlanRequest, sites: Sequence[Site], model: LatencyModel | None = None
) -> list[PlanStep]:
    model = model or LatencyModel()
    rng = np.random.default_rng([request.seed, 4])
    places = unique_places(sites)
    chip_sites = [s for s in places if s.iso3 in request.countries]
    missing = set(request.countries) - {s.iso3 for s in chip_sites}
    if missing:
        raise ScenarioError(f"no chip site in {', '.join(sorted(missing))}; add sites for it")
    per_country = {code: [s for s in chip_sites if s.iso3 == code] for code in request.countries}
    chips = [
        per_country[code][int(i)]
        for code in request.countries
        for i in rng.integers(0, len(per_country[code]), request.chips_per_country)
    ]
    chip_xyz = unit_vectors([s.lat_deg for s in chips], [s.lon_deg for s in chips])
    all_xyz = unit_vectors([s.lat_deg for s in places], [s.lon_deg for s in places])
    near = np.flatnonzero((pairwise_km(chip_xyz, all_xyz) <= request.candidate_radius_km).any(0))
    candidates = [places[int(i)] for i in near]
    if len(candidates) < request.k:
        raise ScenarioError(
            f"only {len(candidates)} candidate sites within {request.candidate_radius_km} km"
        )
    cand_lat = np.array([s.lat_deg for s in candidates])
    cand_lon = np.array([s.lon_deg for s in candidates])
    distance = pairwise_km(chip_xyz, unit_vectors(cand_lat, cand_lon))
    rtt = model.rtt_ms(rng, distance, model.draw_last_mile_ms(rng, (len(chips), 1)))
    grid = build_grid(request.grid_km)
    field = LandmarkField(grid, cand_lat, cand_lon)
    params = FastParams(
        margin_km=2.0 * (request.resolution_km + FLOAT_MARGIN_KM) + 1.0,
        robust_landmarks=request.robust_landmarks,
    )
    land = land_touches(grid, params.margin_km)  # sea-neutral licences, geo's default
    cells = {
        code: classify_cells(grid, country(code), params.margin_km, land) for code in per_country
    }

    def score(chosen: list[int]) -> tuple[float, float]:
        mask = np.full(len(candidates), np.nan)
        mask[chosen] = 0.0
        verified = 0
        log_areas = []
        for row, chip in enumerate(chips):
            outcome = fast_verdict(field, params, cells[chip.iso3], rtt[row] + mask)
            verified += outcome.verdict == FastVerdict.VERIFIED
            log_areas.append(np.log10(max(outcome.sound_area_upper_km2, 1.0)))
        return verified / len(chips), float(np.mean(log_areas))

    def value(rate: float, log_area: float) -> float:
        return rate - _PROXY_WEIGHT * log_area

    chosen: list[int] = []
    steps: list[PlanStep] = []
    current = value(0.0, 9.0)
    rate_now = 0.0
    heap = [(-np.inf, index) for index in range(len(candidates))]
    heapq.heapify(heap)
    while len(chosen) < request.k and heap:
        _, index = heapq.heappop(heap)
        rate, log_area = score([*chosen, index])
        gain = value(rate, log_area) - current
        if heap and -heap[0][0] > gain + 1e-12:
            heapq.heappush(heap, (-gain, index))  # stale bound: re-queue with the fresh gain
            continue
        chosen.append(index)
        current = value(rate, log_area)
        steps.append(PlanStep(candidates[index], rate, rate - rate_now, log_area))
        rate_now = rate
        logger.info("picked %s: verified %.3f", candidates[index].name, rate)
    return steps
