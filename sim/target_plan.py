"""Target planning: the fewest landmarks, placed where, that verify a share of honest chips.

For each tolerated number of faulty landmarks f, landmarks are added greedily
(`greedy.lazy_greedy`, as in `planning`) until the fast path verifies `target_share` of a fixed
honest choice population or `max_landmarks` is reached. Candidates are metro landmarks (every
bundled place within `candidate_radius_km` of a chip site, reached over the latency model like
any host) and, at every chip site of the licensed countries, a landmark co-located in that data
centre. A co-located landmark reaches the chips of its own site over its own cross-connect, as
the demo models it (lightfence/demo/relay.py: no metro last mile, no jitter); everything else
follows the model. Each campus offers f + 1 co-located slots (separately operated landmarks in
one data centre), added in one pick: alone, the first of them proves nothing at f >= 1. The
share reported for the plan comes from a held-out population: other chip draws and fresh paths
(`holdout_seed`), never the chips the choice saw. Chips sit at their
declared sites (the data centres a vendor registers them at), which the fast path may use as a
witness point of the sound region: a co-located landmark's region is smaller than a fast-path
cell.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely

from geo.geodesy import unit_vectors
from geo.regions import country
from sim import greedy
from sim.errors import ScenarioError
from sim.fastpath import CountryCells, FastParams, LandmarkField, build_grid, margin_km_for
from sim.greedy import Population
from sim.latency import LatencyModel
from sim.site_limits import SiteLimit, site_limit
from sim.sites import Site, pairwise_km, unique_places

# Round trip over a cross-connect inside one campus: the demo forwards these at once, so what
# remains is the hosts' own processing, ~0.1 ms (15 km of light) as loopback measures it there
# (a responder that signs the nonce: ~95 µs, shared/DESIGN.md). Hardware timestamping and a
# faster signer shrink it; `TargetRequest.colocated_rtt_ms` models that.
COLOCATED_RTT_MS = 0.1
# The plan stops when this many picks in a row verified no further choice chip.
STALL_PICKS = 2


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
    colocated_rtt_ms: float = COLOCATED_RTT_MS

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
        if not 0.0 <= self.colocated_rtt_ms <= 10.0:
            raise ScenarioError(f"colocated_rtt_ms must be in [0, 10], got {self.colocated_rtt_ms}")
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
    holdout_by_country: dict[str, float]  # held-out verified share per licensed country
    stalled: bool  # stopped short: STALL_PICKS more picks verified no further choice chip

    def to_json(self) -> dict[str, Any]:
        return {
            "faults": self.faults,
            "landmarks": len(self.landmarks),
            "colocated": sum(c.colocated for c in self.landmarks),
            "sites": [c.to_json() for c in self.landmarks],
            "choice_verified_share": self.choice_share,
            "holdout_verified_share": self.holdout_share,
            "holdout_chips": self.holdout_chips,
            "holdout_verified_share_by_country": self.holdout_by_country,
            "reached_target": self.reached,
            "stalled": self.stalled,
        }


class _World:
    """Candidates, chip sites, licence cells and the fast-path field, shared by every f."""

    def __init__(self, request: TargetRequest, sites: Sequence[Site], model: LatencyModel):
        places = unique_places(sites)
        self.per_country = greedy.sites_by_country(places, request.countries)
        chip_sites = [s for code in request.countries for s in self.per_country[code]]
        # f + 1 co-located landmarks per campus: with f liars among them one honest one remains,
        # so a site far from any metro landmark can still be verified robustly.
        copies = max(request.faults) + 1
        radius_km = request.candidate_radius_km
        self.candidates = tuple(
            [Candidate(site, False) for site in greedy.near(places, chip_sites, radius_km)]
            + [Candidate(s, True) for s in chip_sites for _ in range(copies)]
        )
        self.model = model
        self.request = request
        lat = np.array([c.site.lat_deg for c in self.candidates])
        lon = np.array([c.site.lon_deg for c in self.candidates])
        self.candidate_xyz = unit_vectors(lat, lon)
        self.field = LandmarkField(build_grid(request.grid_km), lat, lon)
        self.margin_km = margin_km_for(request.resolution_km)
        self.cells: dict[str, CountryCells] = greedy.country_cells(
            self.field.grid, request.countries, self.margin_km
        )

    def population(self, seed: int, per_country: int, balanced: bool) -> Population:
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
                rtt[here, column] = self.request.colocated_rtt_ms
        in_country = {
            site: bool(shapely.contains_xy(country(site.iso3).geometry, site.lon_deg, site.lat_deg))
            for site in set(chips)
        }
        site_km = distance.copy()
        site_km[[not in_country[chip] for chip in chips]] = np.nan
        return Population(chips, rtt, site_km)

    def shares(
        self, params: FastParams, population: Population, chosen: list[int]
    ) -> tuple[float, dict[str, float]]:
        """The verified share of the population, and per licensed country."""
        verified = greedy.verified_mask(self.field, params, self.cells, population, chosen)
        codes = np.array([chip.iso3 for chip in population.chips])
        by_country = {
            code: round(float(verified[codes == code].mean()), 4) for code in self.request.countries
        }
        return float(verified.mean()), by_country

    def units(self, faults: int) -> list[tuple[int, ...]]:
        """What the greedy adds in one pick: a metro landmark, or a campus's f + 1 co-located
        landmarks together (alone, the first of them can prove nothing at f >= 1)."""
        metro = [(i,) for i, c in enumerate(self.candidates) if not c.colocated]
        campus: dict[Site, list[int]] = {}
        for i, c in enumerate(self.candidates):
            if c.colocated:
                campus.setdefault(c.site, []).append(i)
        return metro + [tuple(slots[: faults + 1]) for slots in campus.values()]

    def choose(self, params: FastParams, population: Population) -> tuple[list[int], float, bool]:
        """Add landmarks until the target share, the cap, or a stall; the picks, the share and
        whether it stalled: STALL_PICKS picks in a row raised the share of no chip, so nothing
        left reaches chips the picks so far cannot."""
        request = self.request
        units = self.units(params.robust_landmarks)
        share_after: dict[int, float] = {0: 0.0}

        def landmarks(chosen: list[int]) -> list[int]:
            return [i for unit in chosen for i in units[unit]]

        def more(chosen: list[int], share: float) -> bool:
            share_after[len(chosen)] = share
            earlier = share_after.get(len(chosen) - STALL_PICKS)
            stalled = earlier is not None and share <= earlier
            # A campus unit must still fit under the cap.
            room = len(landmarks(chosen)) + params.robust_landmarks + 1 <= request.max_landmarks
            return share < request.target_share and room and not stalled

        picks = greedy.lazy_greedy(
            len(units),
            lambda chosen: greedy.score(
                self.field, params, self.cells, population, landmarks(chosen)
            ),
            more,
            rescore_when_flat=True,
        )
        stalled_picks = 0
        while (
            len(picks) > stalled_picks
            and share_after[len(picks) - 1 - stalled_picks] >= (picks[-1][1])
        ):
            stalled_picks += 1  # they verified no further chip: not part of the plan
        share = picks[-1][1] if picks else 0.0
        chosen = landmarks([unit for unit, _, _ in picks[: len(picks) - stalled_picks]])
        full = len(chosen) + params.robust_landmarks + 1 > request.max_landmarks
        return chosen, share, share < request.target_share and not full


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
        chosen, share, stalled = world.choose(params, choice)
        holdout_share, by_country = world.shares(params, holdout, chosen)
        plans.append(
            TargetPlan(
                faults=faults,
                landmarks=tuple(world.candidates[i] for i in chosen),
                choice_share=share,
                holdout_share=holdout_share,
                holdout_chips=len(holdout.chips),
                reached=share >= request.target_share,
                holdout_by_country=by_country,
                stalled=stalled,
            )
        )
    return plans


def site_limits(request: TargetRequest, sites: Sequence[Site]) -> list[SiteLimit]:
    """Per chip site of the licensed countries: the co-located round trip it needs at most."""
    per_country = greedy.sites_by_country(unique_places(sites), request.countries)
    margin_km = margin_km_for(request.resolution_km)
    return [site_limit(s, margin_km) for code in request.countries for s in per_country[code]]
