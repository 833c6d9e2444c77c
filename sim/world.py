"""The fixed part of a scenario: landmarks, chip sites, licences and the fast-path field."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt
import shapely
from shapely.geometry.base import BaseGeometry

from geo.audit import audit_landmarks
from geo.calibration import CalibrationModel, CalibrationSample
from geo.geodesy import unit_vectors
from geo.regions import country, country_codes
from sim.adversaries import ADVERSARY_NAMES, LIAR_ADVERSARIES, AdversaryParams
from sim.errors import ScenarioError
from sim.fastpath import (
    CountryCells,
    FastParams,
    LandmarkField,
    build_grid,
    classify_cells,
    land_touches,
    margin_km_for,
)
from sim.latency import LatencyModel
from sim.sites import Site, load_sites, pairwise_km, unique_places

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Scenario:
    chips: int = 1000
    landmarks: int = 50
    adversary: str = "none"
    seed: int = 0
    smuggled_fraction: float = 0.3
    chunk_size: int = 2000
    workers: int = 1
    grid_km: float = 75.0
    k_best: int = 10
    robust_landmarks: int = 1
    sample_size: int = 40
    audit: bool = True  # exclude landmarks the mesh audit proves misplaced, as the verifier does
    resolution_km: float = 5.0
    jitter_km: float = 20.0
    smuggle_radius_km: float = 2500.0
    latency: LatencyModel = field(default_factory=LatencyModel)
    adversary_params: AdversaryParams = field(default_factory=AdversaryParams)
    sites_path: Path | None = None
    landmark_sites_path: Path | None = None

    def __post_init__(self) -> None:
        if self.adversary not in ADVERSARY_NAMES:
            raise ScenarioError(
                f"unknown adversary {self.adversary!r}; choose from {', '.join(ADVERSARY_NAMES)}"
            )
        if self.chips < 1 or self.chunk_size < 1 or self.workers < 1:
            raise ScenarioError("chips, chunk_size and workers must be >= 1")
        if self.landmarks < 2:
            raise ScenarioError("a verdict needs at least 2 landmarks")
        if not 0.0 <= self.smuggled_fraction <= 1.0:
            raise ScenarioError("smuggled_fraction must be in [0, 1]")
        if not 10.0 <= self.grid_km <= 1000.0:
            raise ScenarioError("grid_km must be in [10, 1000]")
        if not 2 <= self.k_best <= 127 or self.robust_landmarks < 0 or self.sample_size < 0:
            raise ScenarioError("k_best must be in [2, 127], robust_landmarks and sample_size >= 0")
        if self.robust_landmarks + 1 > self.k_best:
            raise ScenarioError("k_best must exceed robust_landmarks")


@dataclass(frozen=True, slots=True)
class Liar:
    landmark_index: int
    true_lat_deg: float
    true_lon_deg: float
    claimed_site: int  # index into World.chip_sites


class World:
    """Everything fixed for a run. Built once in the parent; forked workers share it."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        rng = np.random.default_rng([scenario.seed, 0])
        known = set(country_codes())
        all_sites = unique_places(load_sites(scenario.sites_path))
        self.chip_sites = self._inside_sites([s for s in all_sites if s.iso3 in known])
        if len({s.iso3 for s in self.chip_sites}) < 2:
            raise ScenarioError("chip sites must span at least two countries")
        self.country_codes = tuple(sorted({s.iso3 for s in self.chip_sites}))
        index_of = {code: i for i, code in enumerate(self.country_codes)}
        self.site_country = np.array([index_of[s.iso3] for s in self.chip_sites], dtype=np.int64)
        self.site_lat = np.array([s.lat_deg for s in self.chip_sites])
        self.site_lon = np.array([s.lon_deg for s in self.chip_sites])
        self.site_xyz = unit_vectors(self.site_lat, self.site_lon)
        self.geometries: list[BaseGeometry] = [country(c).geometry for c in self.country_codes]
        for geometry in self.geometries:
            shapely.prepare(geometry)

        landmark_pool = (
            unique_places(load_sites(scenario.landmark_sites_path))
            if scenario.landmark_sites_path
            else all_sites
        )
        if scenario.landmarks > len(landmark_pool):
            raise ScenarioError(
                f"asked for {scenario.landmarks} landmarks but only {len(landmark_pool)} "
                "distinct landmark sites exist"
            )
        chosen = np.sort(rng.choice(len(landmark_pool), scenario.landmarks, replace=False))
        self.landmark_sites: tuple[Site, ...] = tuple(landmark_pool[i] for i in chosen)
        self.landmark_ids = tuple(f"lm{i:03d}" for i in range(len(self.landmark_sites)))
        self.landmark_lat = np.array([s.lat_deg for s in self.landmark_sites])
        self.landmark_lon = np.array([s.lon_deg for s in self.landmark_sites])
        self.landmark_xyz = unit_vectors(self.landmark_lat, self.landmark_lon)

        self.claimed_lat = self.landmark_lat.copy()
        self.claimed_lon = self.landmark_lon.copy()
        self.liar: Liar | None = None
        if scenario.adversary in LIAR_ADVERSARIES:
            self.liar = self._pick_liar(rng)
            self.claimed_lat[self.liar.landmark_index] = self.site_lat[self.liar.claimed_site]
            self.claimed_lon[self.liar.landmark_index] = self.site_lon[self.liar.claimed_site]

        site_distance = pairwise_km(self.site_xyz, self.site_xyz)
        other = self.site_country[:, None] != self.site_country[None, :]
        near = other & (site_distance <= scenario.smuggle_radius_km)
        self.destinations = [
            np.flatnonzero(near[i]) if near[i].any() else np.flatnonzero(other[i])
            for i in range(len(self.chip_sites))
        ]

        self.grid = build_grid(scenario.grid_km)
        self.field = LandmarkField(self.grid, self.claimed_lat, self.claimed_lon)
        self.fast_params = FastParams(
            margin_km=margin_km_for(scenario.resolution_km),
            k_best=scenario.k_best,
            robust_landmarks=scenario.robust_landmarks,
        )
        # Licences here are sea-neutral (geo's default): every country's land, once.
        land = land_touches(self.grid, self.fast_params.margin_km)
        self.cells: list[CountryCells] = [
            classify_cells(self.grid, country(code), self.fast_params.margin_km, land)
            for code in self.country_codes
        ]
        mesh_rtt = self._mesh_rtt_ms(np.random.default_rng([scenario.seed, 1]))
        self.audit: dict[str, str] = {}  # landmark id -> status, for those not "ok"
        self.excluded = np.zeros(len(self.landmark_ids), dtype=np.bool_)
        if scenario.audit:
            self._audit(mesh_rtt)
        self.calibration = self._calibrate(mesh_rtt)
        sample = min(scenario.sample_size, scenario.chips)
        self.sample_indices = np.sort(
            np.random.default_rng([scenario.seed, 2]).choice(scenario.chips, sample, replace=False)
        )
        logger.info(
            "world: %d chip sites in %d countries, %d landmarks, %d cells (cover %.1f km)",
            len(self.chip_sites),
            len(self.country_codes),
            len(self.landmark_ids),
            self.grid.lat_deg.size,
            self.grid.covering_km,
        )

    def _inside_sites(self, sites: list[Site]) -> tuple[Site, ...]:
        """Chips start at sites inside their country's bundled border (ground truth)."""
        kept = []
        for site in sites:
            geometry = country(site.iso3).geometry
            if shapely.contains_xy(geometry, site.lon_deg, site.lat_deg):
                kept.append(site)
            else:
                logger.debug(
                    "site %s lies outside the %s border; landmark only", site.name, site.iso3
                )
        return tuple(kept)

    def _pick_liar(self, rng: np.random.Generator) -> Liar:
        """A landmark that claims to sit at a chip site in another country, far away."""
        lie_km = self.scenario.adversary_params.lie_min_km
        distance = pairwise_km(self.landmark_xyz, self.site_xyz)
        for index in rng.permutation(len(self.landmark_ids)):
            own = self.landmark_sites[index].iso3
            options = np.flatnonzero(
                (distance[index] >= lie_km)
                & (distance[index] <= 3.0 * lie_km)
                & np.array([s.iso3 != own for s in self.chip_sites])
            )
            if options.size:
                return Liar(
                    int(index),
                    float(self.landmark_lat[index]),
                    float(self.landmark_lon[index]),
                    int(rng.choice(options)),
                )
        raise ScenarioError("no landmark can claim a site far enough away for the liar scenario")

    def _mesh_rtt_ms(self, rng: np.random.Generator) -> FloatArray:
        """One round of landmark-to-landmark RTTs over real paths (NaN: lost).

        A `hidden-liar` delays its own answers to what its claimed place would typically
        see, which it can always do (it only adds delay), so no pair looks faster than light.
        """
        true_km = pairwise_km(self.landmark_xyz, self.landmark_xyz)
        model = self.scenario.latency
        last_mile = model.draw_last_mile_ms(rng, (true_km.shape[0], 1))
        rtt = model.rtt_ms(rng, true_km, last_mile)
        if self.liar is not None and self.scenario.adversary == "hidden-liar":
            claimed = unit_vectors(self.claimed_lat, self.claimed_lon)
            liar = self.liar.landmark_index
            target = model.typical_rtt_ms(pairwise_km(claimed[liar : liar + 1], claimed))[0]
            rtt[liar] = np.fmax(rtt[liar], target)
            rtt[:, liar] = np.fmax(rtt[:, liar], target)
        return rtt

    def _audit(self, mesh_rtt_ms: FloatArray) -> None:
        """geo.audit on the mesh; like the verifier, exclude landmarks proven impossible."""
        positions = {
            lid: (float(lat), float(lon))
            for lid, lat, lon in zip(
                self.landmark_ids, self.claimed_lat, self.claimed_lon, strict=True
            )
        }
        mesh = [
            (self.landmark_ids[i], self.landmark_ids[j], float(mesh_rtt_ms[i, j]))
            for i, j in zip(*np.nonzero(np.isfinite(mesh_rtt_ms)), strict=True)
            if i != j
        ]
        results = audit_landmarks(positions, mesh)
        self.audit = {lid: r.status for lid, r in results.items() if r.status != "ok"}
        self.excluded = np.array(
            [results[lid].status == "impossible" for lid in self.landmark_ids], dtype=np.bool_
        )
        if self.excluded.any():
            excluded = [
                lid for lid, flag in zip(self.landmark_ids, self.excluded, strict=True) if flag
            ]
            logger.info("audit excludes %s", excluded)

    def _calibrate(self, mesh_rtt_ms: FloatArray) -> CalibrationModel:
        """Fit geo's calibration on the landmark mesh (claimed positions, real paths), leaving
        out excluded landmarks as the verifier does."""
        claimed = unit_vectors(self.claimed_lat, self.claimed_lon)
        claimed_km = pairwise_km(claimed, claimed)
        samples = [
            CalibrationSample(self.landmark_ids[i], float(claimed_km[i, j]), float(rtt))
            for i, j in zip(*np.nonzero(np.isfinite(mesh_rtt_ms)), strict=True)
            if i != j and not (self.excluded[i] or self.excluded[j])
            for rtt in (mesh_rtt_ms[i, j],)
        ]
        return CalibrationModel.fit(samples)

    def inside(
        self, country_index: IntArray, lat_deg: FloatArray, lon_deg: FloatArray
    ) -> npt.NDArray[np.bool_]:
        """Ground truth: is each point inside the bundled border of its country?"""
        out = np.zeros(country_index.shape, dtype=np.bool_)
        for code_index in np.unique(country_index):
            rows = np.flatnonzero(country_index == code_index)
            out[rows] = shapely.contains_xy(
                self.geometries[code_index], lon_deg[rows], lat_deg[rows]
            )
        return out
