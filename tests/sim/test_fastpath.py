"""The fast path's block level only prunes: it selects exactly what cell-by-cell testing does."""

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.assess import assess
from geo.assessment import Verdict
from geo.constants import EARTH_MEAN_RADIUS_KM
from geo.geodesy import unit_vectors
from geo.licence import licence_from_json
from geo.measurement import LandmarkRtt
from geo.regions import country
from sim import fastpath
from sim.errors import ScenarioError
from sim.fastpath import (
    FastParams,
    FastVerdict,
    LandmarkField,
    _float32_at_most,
    build_grid,
    classify_cells,
    fast_verdict,
    land_touches,
)
from sim.latency import LatencyModel
from sim.sites import pairwise_km

rng = np.random.default_rng(7)
LANDMARK_LAT = rng.uniform(-50.0, 65.0, 30)
LANDMARK_LON = rng.uniform(-170.0, 170.0, 30)
GRID = build_grid(150.0)
FIELD = LandmarkField(GRID, LANDMARK_LAT, LANDMARK_LON)
MARGIN_KM = 21.0
CELLS = {code: classify_cells(GRID, country(code), MARGIN_KM) for code in ("USA", "BRA", "DEU")}


def test_block_layout_covers_every_cell_once_and_its_reach_holds():
    blocks = GRID.blocks
    assert blocks is not None
    assert np.array_equal(np.sort(blocks.cells), np.arange(GRID.lat_deg.size))
    assert np.isclose(blocks.area_km2.sum(), GRID.area_km2.sum())
    expanded = blocks.expand(np.arange(blocks.count.size, dtype=np.int32))
    parent = np.repeat(np.arange(blocks.count.size), blocks.count)
    own = np.einsum("ij,ij->i", GRID.xyz[expanded], blocks.xyz[parent]).clip(-1.0, 1.0)
    assert np.arccos(own).max() * EARTH_MEAN_RADIUS_KM <= blocks.reach_km


@settings(max_examples=300, deadline=None)
@given(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False))
def test_float32_key_selects_exactly_the_float64_comparison(value):
    row = np.sort(np.random.default_rng(1).uniform(-1e6, 1e6, 500).astype(np.float32))
    near = np.array([value], dtype=np.float32)
    row = np.concatenate((row, near, np.nextafter(near, np.float32(np.inf))))
    row.sort()
    expected = int(np.count_nonzero(row.astype(np.float64) <= value))
    assert int(np.searchsorted(row, _float32_at_most(value), "right")) == expected


def _outcome(rtt_ms: Any, code: str, robust: int, blocks_min_cells: int) -> tuple[int, float]:
    original = fastpath._BLOCKS_MIN_CELLS
    fastpath._BLOCKS_MIN_CELLS = blocks_min_cells
    try:
        params = FastParams(margin_km=MARGIN_KM, k_best=8, robust_landmarks=robust)
        out = fast_verdict(FIELD, params, CELLS[code], rtt_ms)
    finally:
        fastpath._BLOCKS_MIN_CELLS = original
    return int(out.verdict), out.sound_area_upper_km2


@settings(max_examples=60, deadline=None)
@given(
    lat=st.floats(-40.0, 60.0),
    lon=st.floats(-160.0, 160.0),
    seed=st.integers(0, 2**32 - 1),
    delay_ms=st.sampled_from([0.0, 0.0, 20.0, 150.0]),
    setting=st.tuples(st.integers(0, 2), st.sampled_from(["USA", "BRA", "DEU"])),
)
def test_block_level_gives_the_cell_by_cell_verdict_and_area(lat, lon, seed, delay_ms, setting):
    robust, code = setting
    chip = unit_vectors(np.array([lat]), np.array([lon]))
    distance = pairwise_km(chip, FIELD.xyz)
    model = LatencyModel()
    draw = np.random.default_rng(seed)
    rtt = model.rtt_ms(draw, distance, model.draw_last_mile_ms(draw, (1, 1)))[0] + delay_ms
    rtt[draw.random(rtt.size) < 0.2] = np.nan
    with_blocks = _outcome(rtt, code, robust, blocks_min_cells=0)
    cells_only = _outcome(rtt, code, robust, blocks_min_cells=10**9)
    assert with_blocks[0] == cells_only[0]
    assert with_blocks[1] == pytest.approx(cells_only[1], rel=1e-9, nan_ok=True)


def test_huge_caps_are_counted_by_whole_blocks():
    """A chip no landmark is near: caps cover the globe, and the area is the whole sphere."""
    rtt = np.full(LANDMARK_LAT.size, 400.0)
    verdict, area_km2 = _outcome(rtt, "USA", 1, blocks_min_cells=0)
    assert verdict == fastpath.FastVerdict.INCONCLUSIVE
    assert area_km2 == pytest.approx(GRID.area_km2.sum())


def test_k_best_beyond_int8_counts_is_rejected():
    with pytest.raises(ScenarioError, match="k_best <= 127"):
        FastParams(margin_km=MARGIN_KM, k_best=128)


TOKYO_GRID = build_grid(75.0)
TOKYO_LANDMARKS = np.array([[35.68, 139.65], [34.69, 135.50], [38.27, 140.87], [36.39, 139.06]])
TOKYO_FIELD = LandmarkField(TOKYO_GRID, TOKYO_LANDMARKS[:, 0], TOKYO_LANDMARKS[:, 1])
LAND = land_touches(TOKYO_GRID, MARGIN_KM)


def test_sea_neutral_cells_verify_a_coastal_chip_that_strict_cells_cannot():
    """Tokyo: the sound region reaches Tokyo Bay. Strict cells leave it inconclusive; the
    sea-neutral cells verify it, and `assess` (sea-neutral by default) agrees."""
    chip = (35.62, 139.75)
    distance = pairwise_km(unit_vectors(np.array([chip[0]]), np.array([chip[1]])), TOKYO_FIELD.xyz)
    rtt_ms = distance[0] / fastpath.KM_PER_MS_RTT + 0.3
    params = FastParams(margin_km=MARGIN_KM, k_best=4, robust_landmarks=0)
    strict = classify_cells(TOKYO_GRID, country("JPN"), MARGIN_KM)
    neutral = classify_cells(TOKYO_GRID, country("JPN"), MARGIN_KM, LAND)
    assert fast_verdict(TOKYO_FIELD, params, strict, rtt_ms).verdict != FastVerdict.VERIFIED
    assert fast_verdict(TOKYO_FIELD, params, neutral, rtt_ms).verdict == FastVerdict.VERIFIED
    measurements = [
        LandmarkRtt(f"l{i}", float(lat), float(lon), float(rtt))
        for i, ((lat, lon), rtt) in enumerate(zip(TOKYO_LANDMARKS, rtt_ms, strict=True))
    ]
    assert assess(measurements, licence_from_json({"allowed": ["JPN"]})).verdict is (
        Verdict.VERIFIED
    )


def test_sea_neutral_cells_never_verify_a_chip_off_a_foreign_coast():
    """Busan is Korean: a chip there, licensed to Japan, has Korean land in every cell near it."""
    busan = (35.10, 129.04)
    distance = pairwise_km(
        unit_vectors(np.array([busan[0]]), np.array([busan[1]])), TOKYO_FIELD.xyz
    )
    rtt_ms = distance[0] / fastpath.KM_PER_MS_RTT
    params = FastParams(margin_km=MARGIN_KM, k_best=4, robust_landmarks=0)
    neutral = classify_cells(TOKYO_GRID, country("JPN"), MARGIN_KM, LAND)
    assert fast_verdict(TOKYO_FIELD, params, neutral, rtt_ms).verdict != FastVerdict.VERIFIED
