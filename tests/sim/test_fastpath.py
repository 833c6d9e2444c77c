"""The fast path's block level only prunes: it selects exactly what cell-by-cell testing does."""

from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.sim import fastpath
from benchmarks.sim.errors import ScenarioError
from benchmarks.sim.fastpath import (
    FastParams,
    LandmarkField,
    _float32_at_most,
    build_grid,
    classify_cells,
    fast_verdict,
)
from benchmarks.sim.latency import LatencyModel
from benchmarks.sim.sites import pairwise_km
from geo.constants import EARTH_MEAN_RADIUS_KM
from geo.geodesy import unit_vectors
from geo.regions import country

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
