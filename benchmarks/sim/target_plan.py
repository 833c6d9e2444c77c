"""Target planning: the fewest landmarks, placed where, that verify a share of honest chips.

For each tolerated number of faulty landmarks f, landmarks are added greedily (lazy, as in
`planning`) until the fast path verifies `target_share` of a fixed honest choice population or
`max_landmarks` is reached. Candidates are metro landmarks (every bundled place within
`candidate_radius_km` of a chip site, reached over the latency model like any host) and, at
every chip site of the licensed countries, a landmark co-located in that data centre. A
co-located landmark reaches the chips of its own site over its own cross-connect, as the demo
models it (lightfence/demo/relay.py: no metro last mile, no jitter); everything else follows the
model. Each campus offers f + 1 co-located slots (separately operated landmarks in one data
centre). The share reported for the plan comes from a held-out population: other chip draws and
fresh paths (`holdout_seed`), never the chips the choice saw. Chips sit at their declared
sites (the data centres a vendor registers them at), which the fast path may use as a witness
point of the sound region: a co-located landmark's region is smaller than a fast-path cell.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import shapely

from benchmarks.sim.errors import ScenarioError
from benchmarks.sim.fastpath import (
    CountryCells,
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

FloatArray = npt.NDArray[np.float64]

# Round trip over a cross-connect inside one campus: the demo forwards these at once, so what
# remains is the hosts' own processing, ~0.1 ms (15 km of light) as loopback measures it there.
COLOCATED_RTT_MS = 0.1
_PROXY_WEIGHT = 1e-3  # the area proxy only breaks ties between equal verified shares


@dataclass(frozen=True, slots=True)
class Candidate:
    site: Site
    colocated: bool  # inside the data centre of a chip site, on its own short path

    def to_json(self) -> dict[str, Any]:
        return {
            "metro": self.site.name,
            "iso3": self.site.iso3,
            "lat_deg": self.site.lat_deg,
            "lon_deg": self.site.lon_deg,
            "colocated": self.colocated,
        }


@dataclass(frozen=True, slots=True)
class TargetRequest:
    countries: tuple[str, ...]
    target_share: float = 0.9
    faults: tuple[int, ...] = (0, 1)
    max_landmarks: int = 40
    chips_per_country: int = 12
    holdout_chips_per_country: int = 50
    candidate_radius_km: float = 3000.0
    grid_km: float = 150.0
    resolution_km: float = 5.0
    seed: int = 0
    holdout_seed: int = 1

    def __post_init__(self) -> None:
        if not self.countries:
            raise ScenarioError("name at least one licensed country")
        if not 0.0 < self.target_share <= 1.0:
            raise ScenarioError(f"target share must be in (0, 1], got {self.target_share}")
        if not self.faults or min(self.faults) < 0:
            raise ScenarioError("faults must be one or more integers >= 0")
        if self.max_landmarks < max(self.faults) + 2:
            raise ScenarioError("max_landmarks must be >= max(faults) + 2")
        if self.chips_per_country < 1 or self.holdout_chips_per_country < 1:
            raise ScenarioError("chips_per_country and holdout_chips_per_country must be >= 1")
        if self.seed == self.holdout_seed:
            raise ScenarioError("holdout_seed must differ from seed: the check needs fresh chips")


@dataclass(frozen=True, slots=True)
class TargetPlan:
    faults: int
    landmarks: tuple[Candidate, ...]
    choice_share: float  # on the chips the greedy choice saw
    holdout_share: float  # on held-out chips and fresh paths: the plan's figure
    holdout_chips: int
    reached: bool  # choice_share reached the target within max_landmarks

    def to_json(self) -> dict[str, Any]:
        return {
            "faults": self.faults,
            "landmarks": len(self.landmarks),
            "colocated": sum(c.colocated for c in self.landmarks),
            "sites": [c.to_json() for c in self.landmarks],
            "choice_verified_share": self.choice_share,
            "holdout_verified_share": self.holdout_share,
            "holdout_chips": self.holdout_chips,
            "reached_target": self.reached,
        }


@dataclass(frozen=True, slots=True)
class _Population:
    chips: tuple[Site, ...]
    rtt_ms: FloatArray  # (chips, candidates), NaN = every probe lost
    # (chips, candidates) distances from each chip's declared site; NaN rows: site not inside
    # its country's polygon, so it cannot serve as a witness
    site_km: FloatArray


class _World:
    """Candidates, chip sites, licence cells and the fast-path field, shared by every f."""

    def __init__(self, request: TargetRequest, sites: Sequence[Site], model: LatencyModel):
        places = unique_places(sites)
        self.per_country = {
            code: [s for s in places if s.iso3 == code] for code in request.countries
        }
        missing = [code for code, rows in self.per_country.items() if not rows]
        if missing:
            raise ScenarioError(f"no chip site in {', '.join(sorted(missing))}; add sites for it")
        chip_sites = [s for code in request.countries for s in self.per_country[code]]
        chip_xyz = unit_vectors([s.lat_deg for s in chip_sites], [s.lon_deg for s in chip_sites])
        all_xyz = unit_vectors([s.lat_deg for s in places], [s.lon_deg for s in places])
        near = (pairwise_km(chip_xyz, all_xyz) <= request.candidate_radius_km).any(0)
        # f + 1 co-located landmarks per campus: with f liars among them one honest one remains,
        # so a site far from any metro landmark can still be verified robustly.
        copies = max(request.faults) + 1
        self.candidates = tuple(
            [Candidate(places[int(i)], False) for i in np.flatnonzero(near)]
            + [Candidate(s, True) for s in chip_sites for _ in range(copies)]
        )
        self.model = model
        self.request = request
        lat = np.array([c.site.lat_deg for c in self.candidates])
        lon = np.array([c.site.lon_deg for c in self.candidates])
        self.candidate_xyz = unit_vectors(lat, lon)
        self.field = LandmarkField(build_grid(request.grid_km), lat, lon)
        self.margin_km = 2.0 * (request.resolution_km + FLOAT_MARGIN_KM) + 1.0
        land = land_touches(self.field.grid, self.margin_km)  # sea-neutral licences
        self.cells: dict[str, CountryCells] = {
            code: classify_cells(self.field.grid, country(code), self.margin_km, land)
            for code in request.countries
        }

    def population(self, seed: int, per_country: int, balanced: bool) -> _Population:
        """Chips at the countries' sites. `balanced` deals them round-robin (the choice must see
        every site once there are enough chips); otherwise each chip picks a site at random."""
        rng = np.random.default_rng([seed, 6])
        chips = tuple(
            self.per_country[code][int(i)]
            for code in self.request.countries
            for i in (
                np.resize(rng.permutation(len(self.per_country[code])), per_country)
                if balanced
                else rng.integers(0, len(self.per_country[code]), per_country)
            )
        )
        chip_xyz = unit_vectors([s.lat_deg for s in chips], [s.lon_deg for s in chips])
        distance = pairwise_km(chip_xyz, self.candidate_xyz)
        model = self.model
        rtt = model.rtt_ms(rng, distance, model.draw_last_mile_ms(rng, (len(chips), 1)))
        for column, candidate in enumerate(self.candidates):
            if candidate.colocated:
                here = np.array([chip == candidate.site for chip in chips])
                rtt[here, column] = COLOCATED_RTT_MS
        in_country = {
            site: bool(shapely.contains_xy(country(site.iso3).geometry, site.lon_deg, site.lat_deg))
            for site in set(chips)
        }
        site_km = distance.copy()
        site_km[[not in_country[chip] for chip in chips]] = np.nan
        return _Population(chips, rtt, site_km)

    def share(self, params: FastParams, population: _Population, chosen: list[int]) -> float:
        return self._score(params, population, chosen)[0]

    def _score(
        self, params: FastParams, population: _Population, chosen: list[int]
    ) -> tuple[float, float]:
        mask = np.full(len(self.candidates), np.nan)
        mask[chosen] = 0.0
        verified = 0
        log_areas = []
        for row, chip in enumerate(population.chips):
            outcome = fast_verdict(
                self.field,
                params,
                self.cells[chip.iso3],
                population.rtt_ms[row] + mask,
                population.site_km[row],
            )
            verified += outcome.verdict == FastVerdict.VERIFIED
            log_areas.append(np.log10(max(outcome.sound_area_upper_km2, 1.0)))
        return verified / len(population.chips), float(np.mean(log_areas))

    def greedy(self, params: FastParams, population: _Population) -> tuple[list[int], float]:
        """Add landmarks (lazy greedy) until the target share or the cap; the picks and share."""
        chosen: list[int] = []
        current = -_PROXY_WEIGHT * 9.0
        share = 0.0
        heap = [(-np.inf, index) for index in range(len(self.candidates))]
        heapq.heapify(heap)
        while share < self.request.target_share and len(chosen) < self.request.max_landmarks:
            if not heap:
                break
            _, index = heapq.heappop(heap)
            rate, log_area = self._score(params, population, [*chosen, index])
            gain = rate - _PROXY_WEIGHT * log_area - current
            if heap and -heap[0][0] > gain + 1e-12:
                heapq.heappush(heap, (-gain, index))  # stale bound: re-queue with the fresh gain
                continue
            chosen.append(index)
            current += gain
            if rate <= share:
                # Verification is not submodular: a pick that did not raise the share (the
                # first of f + 1 landmarks at a campus) can raise others' gains above their
                # stale bounds, so every candidate is scored afresh for the next pick.
                heap = [(-np.inf, i) for i in range(len(self.candidates)) if i not in chosen]
                heapq.heapify(heap)
            share = rate
        return chosen, share


def plan_to_target(
    request: TargetRequest, sites: Sequence[Site], model: LatencyModel | None = None
) -> list[TargetPlan]:
    """One plan per f in `request.faults`, each checked on held-out chips."""
    world = _World(request, sites, model or LatencyModel())
    choice = world.population(request.seed, request.chips_per_country, balanced=True)
    holdout = world.population(
        request.holdout_seed, request.holdout_chips_per_country, balanced=False
    )
    plans = []
    for faults in request.faults:
        params = FastParams(margin_km=world.margin_km, robust_landmarks=faults)
        chosen, share = world.greedy(params, choice)
        plans.append(
            TargetPlan(
                faults=faults,
                landmarks=tuple(world.candidates[i] for i in chosen),
                choice_share=share,
                holdout_share=world.share(params, holdout, chosen),
                holdout_chips=len(holdout.chips),
                reached=share >= request.target_share,
            )
        )
    return plans
