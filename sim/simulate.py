"""One simulation run end to end: world, streamed chunks, cross-check, results dict."""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shapely.geometry.base import BaseGeometry

from sim.metrics import Tally
from sim.runner import (
    CrossCheck,
    merge_checks,
    peak_memory_mib,
    stream_chunks,
    summarise_cross_check,
)
from sim.world import Scenario, World

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SimulationRun:
    results: dict[str, Any]
    world: World
    regions: list[tuple[str, BaseGeometry | None, BaseGeometry | None]]


def simulate(scenario: Scenario, on_chunk: Callable[[int], None] | None = None) -> SimulationRun:
    """Run a scenario; `on_chunk(chips_done)` is called after every chunk (progress bars)."""
    started = time.perf_counter()
    world = World(scenario)
    built = time.perf_counter()
    tally = Tally(len(world.country_codes), scenario.adversary_params.relocate_rounds)
    checks: list[CrossCheck] = []
    check_s = 0.0
    for chunk in stream_chunks(world):
        tally.merge(chunk.tally)
        checks.append(chunk.check)
        check_s += chunk.check_s
        if on_chunk is not None:
            on_chunk(chunk.chips)
    streamed = time.perf_counter()
    check = merge_checks(checks)
    summary = summarise_cross_check(check)
    results: dict[str, Any] = {
        "scenario": _scenario_json(scenario),
        "world": {
            "chip_sites": len(world.chip_sites),
            "countries": len(world.country_codes),
            "landmarks": [
                {
                    "id": lid,
                    "name": site.name,
                    "iso3": site.iso3,
                    "lat_deg": site.lat_deg,
                    "lon_deg": site.lon_deg,
                    "claimed_lat_deg": float(world.claimed_lat[i]),
                    "claimed_lon_deg": float(world.claimed_lon[i]),
                }
                for i, (lid, site) in enumerate(
                    zip(world.landmark_ids, world.landmark_sites, strict=True)
                )
            ],
            "grid_cells": int(world.grid.lat_deg.size),
            "cell_covering_km": world.grid.covering_km,
            "fast_margin_km": world.fast_params.margin_km,
            "liar": dataclasses.asdict(world.liar) if world.liar else None,
            # geo.audit status of every landmark not "ok"; "excluded" ones (impossible) are
            # left out of verdicts and calibration, as the verifier does.
            "audit": world.audit,
            "excluded_landmarks": [
                lid for lid, flag in zip(world.landmark_ids, world.excluded, strict=True) if flag
            ],
        },
        "latency_model_ratio_long_paths": scenario.latency.vacuum_ratio_quantiles(
            (0.05, 0.5, 0.95)
        ),
        "metrics": tally.to_json(world.country_codes),
        "cross_check": summary,
        "timing": {
            "wall_s": streamed - started,
            "world_s": built - started,
            "stream_s": streamed - built,
            # Spent inside the stream (by the workers, in parallel with other chunks).
            "cross_check_s": check_s,
            "chips_per_s": scenario.chips / max(streamed - built, 1e-9),
        },
        "peak_memory": peak_memory_mib(),
    }
    return SimulationRun(results, world, check.regions)


def _scenario_json(scenario: Scenario) -> dict[str, Any]:
    out = dataclasses.asdict(scenario)
    out["sites_path"] = str(scenario.sites_path) if scenario.sites_path else None
    out["landmark_sites_path"] = (
        str(scenario.landmark_sites_path) if scenario.landmark_sites_path else None
    )
    return out
