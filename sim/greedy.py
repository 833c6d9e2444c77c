"""What both landmark planners share: candidate sites, licence cells, the fast-path score of a
choice and the lazy greedy loop (CELF).

`planning` picks K landmarks; `target_plan` adds landmarks until a verified share. A choice is
scored by the share of chips the fast path verifies, ties broken by the mean log10 of its
sound-area bound (smaller is better).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from geo.geodesy import unit_vectors
from geo.regions import country
from sim.errors import ScenarioError
from sim.fastpath import (
    CellGrid,
    CountryCells,
    FastOutcome,
    FastParams,
    FastVerdict,
    LandmarkField,
    classify_cells,
    fast_verdict,
    land_touches,
)
from sim.sites import Site, pairwise_km

FloatArray = npt.NDArray[np.float64]
PROXY_WEIGHT = 1e-3  # the area proxy only breaks ties between equal verified shares
# Value of the empty choice: nothing verified, a world-sized (10^9 km²) region.
EMPTY_VALUE = -PROXY_WEIGHT * 9.0


def sites_by_country(places: Sequence[Site], countries: Sequence[str]) -> dict[str, list[Site]]:
    """Each licensed country's sites, in `places` order; every country needs one."""
    found = {code: [s for s in places if s.iso3 == code] for code in countries}
    missing = [code for code, rows in found.items() if not rows]
    if missing:
        raise ScenarioError(f"no chip site in {', '.join(sorted(missing))}; add sites for it")
    return found


def near(places: Sequence[Site], chips: Sequence[Site], radius_km: float) -> list[Site]:
    """The places within `radius_km` of any chip: the candidate landmark sites."""
    chip_xyz = unit_vectors([s.lat_deg for s in chips], [s.lon_deg for s in chips])
    all_xyz = unit_vectors([s.lat_deg for s in places], [s.lon_deg for s in places])
    close = (pairwise_km(chip_xyz, all_xyz) <= radius_km).any(0)
    return [places[int(i)] for i in np.flatnonzero(close)]


def country_cells(
    grid: CellGrid, countries: Sequence[str], margin: float
) -> dict[str, CountryCells]:
    land = land_touches(grid, margin)  # sea-neutral licences, geo's default
    return {code: classify_cells(grid, country(code), margin, land) for code in countries}


@dataclass(frozen=True, slots=True)
class Population:
    """Chips a choice is scored on, and what each measures to every candidate landmark."""

    chips: tuple[Site, ...]
    rtt_ms: FloatArray  # (chips, candidates), NaN = every probe lost
    # (chips, candidates) distances from each chip's declared site, a witness point of its
    # sound region; None, or NaN rows: no such witness (the site is outside its country)
    site_km: FloatArray | None = None


def _outcomes(
    field: LandmarkField,
    params: FastParams,
    cells: dict[str, CountryCells],
    population: Population,
    chosen: list[int],
) -> list[FastOutcome]:
    """The fast verdict of every chip of the population when only `chosen` answer."""
    mask = np.full(population.rtt_ms.shape[1], np.nan)
    mask[chosen] = 0.0
    site_km = population.site_km
    return [
        fast_verdict(
            field,
            params,
            cells[chip.iso3],
            population.rtt_ms[row] + mask,
            None if site_km is None else site_km[row],
        )
        for row, chip in enumerate(population.chips)
    ]


def verified_mask(
    field: LandmarkField,
    params: FastParams,
    cells: dict[str, CountryCells],
    population: Population,
    chosen: list[int],
) -> npt.NDArray[np.bool_]:
    """Per chip of the population: verified when only the `chosen` candidates answer?"""
    outcomes = _outcomes(field, params, cells, population, chosen)
    return np.array([o.verdict == FastVerdict.VERIFIED for o in outcomes], dtype=np.bool_)


def score(
    field: LandmarkField,
    params: FastParams,
    cells: dict[str, CountryCells],
    population: Population,
    chosen: list[int],
) -> tuple[float, float]:
    """(verified share, mean log10 sound-area bound) of the population's chips when only the
    `chosen` candidates answer."""
    outcomes = _outcomes(field, params, cells, population, chosen)
    verified = sum(o.verdict == FastVerdict.VERIFIED for o in outcomes)
    log_areas = [np.log10(max(o.sound_area_upper_km2, 1.0)) for o in outcomes]
    return verified / len(population.chips), float(np.mean(log_areas))


def value(share: float, log_area: float) -> float:
    return share - PROXY_WEIGHT * log_area


def lazy_greedy(
    candidates: int,
    score_of: Callable[[list[int]], tuple[float, float]],
    more: Callable[[list[int], float], bool],
    rescore_when_flat: bool,
) -> list[tuple[int, float, float]]:
    """Picks as (candidate index, share, mean log10 area) while `more(chosen, share)` holds.

    A candidate's last gain is an upper bound on its next one when the objective is submodular.
    Verification needs several caps together, so it is not exactly; lazy greedy is then a
    heuristic. `rescore_when_flat`: after a pick that did not raise the share (the first of
    f + 1 landmarks at a campus) every candidate is scored afresh, since that pick can raise
    others' gains above their stale bounds.
    """
    chosen: list[int] = []
    picks: list[tuple[int, float, float]] = []
    current = EMPTY_VALUE
    share = 0.0
    heap = [(-np.inf, index) for index in range(candidates)]
    heapq.heapify(heap)
    while heap and more(chosen, share):
        _, index = heapq.heappop(heap)
        rate, log_area = score_of([*chosen, index])
        gain = value(rate, log_area) - current
        if heap and -heap[0][0] > gain + 1e-12:
            heapq.heappush(heap, (-gain, index))  # stale bound: re-queue with the fresh gain
            continue
        chosen.append(index)
        picks.append((index, rate, log_area))
        current = value(rate, log_area)
        if rescore_when_flat and rate <= share:
            heap = [(-np.inf, i) for i in range(candidates) if i not in chosen]
            heapq.heapify(heap)
        share = rate
    return picks
