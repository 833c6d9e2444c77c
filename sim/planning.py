"""Fleet planning: choose K landmark sites that verify the most honest chips in given countries.

Lazy greedy (`greedy.lazy_greedy`); the report gives each pick's true marginal gain. Ties
(early on, when no chip can be verified yet) are broken by a proxy: the mean log10 of the fast
path's sound-area bound, smaller being better.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from geo.geodesy import unit_vectors
from sim import greedy
from sim.errors import ScenarioError
from sim.fastpath import FastParams, LandmarkField, build_grid, margin_km_for
from sim.latency import LatencyModel
from sim.sites import Site, pairwise_km, unique_places

logger = logging.getLogger(__name__)


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
    per_country = greedy.sites_by_country(places, request.countries)
    chips = tuple(
        per_country[code][int(i)]
        for code in request.countries
        for i in rng.integers(0, len(per_country[code]), request.chips_per_country)
    )
    candidates = greedy.near(places, chips, request.candidate_radius_km)
    if len(candidates) < request.k:
        raise ScenarioError(
            f"only {len(candidates)} candidate sites within {request.candidate_radius_km} km"
        )
    cand_lat = np.array([s.lat_deg for s in candidates])
    cand_lon = np.array([s.lon_deg for s in candidates])
    chip_xyz = unit_vectors([s.lat_deg for s in chips], [s.lon_deg for s in chips])
    distance = pairwise_km(chip_xyz, unit_vectors(cand_lat, cand_lon))
    rtt = model.rtt_ms(rng, distance, model.draw_last_mile_ms(rng, (len(chips), 1)))
    grid = build_grid(request.grid_km)
    field = LandmarkField(grid, cand_lat, cand_lon)
    params = FastParams(
        margin_km=margin_km_for(request.resolution_km),
        robust_landmarks=request.robust_landmarks,
    )
    cells = greedy.country_cells(grid, request.countries, params.margin_km)
    population = greedy.Population(chips, rtt)
    picks = greedy.lazy_greedy(
        len(candidates),
        lambda chosen: greedy.score(field, params, cells, population, chosen),
        lambda chosen, _share: len(chosen) < request.k,
        rescore_when_flat=False,
    )
    steps: list[PlanStep] = []
    rate_now = 0.0
    for index, rate, log_area in picks:
        steps.append(PlanStep(candidates[index], rate, rate - rate_now, log_area))
        rate_now = rate
        logger.info("picked %s: verified %.3f", candidates[index].name, rate)
    return steps
