"""A fast, conservative verdict for bulk simulation, never more permissive than geo.assess.assess.

The world is cut into lon/lat cells of about `spacing_km`; every point of a cell lies within
`covering_km` of its centre. A cap (landmark, proof radius r) *excludes* a cell when the cell
centre's spherical distance from the landmark exceeds

    r · SPHERE_DISTANCE_INFLATION + margin_km + covering_km,

where margin_km covers geo.cap_polygon's polygon slack (resolution and float margin, doubled). Then
no point of the cell lies in geo's (deliberately enlarged) cap polygon either. Each country's
cells are classified once as *certainly inside* (the cell box, grown by the country's boundary
error and the margin, lies within the border), *certainly outside* (that grown box misses it) or
mixed. A chip is

* `verified` if every cell that is not certainly inside its licensed country is excluded by at
  least `robust_landmarks + 1` caps (so it stays verified if any `robust_landmarks` landmarks lie
  about where they are) and a cell centre lies inside every cap (the region is not empty, so
  assess cannot call it inconsistent);
* `violation` likewise with "certainly outside";
* `dark` with no response; `inconclusive` otherwise.

For a sea-neutral licence (geo's default), "certainly inside" becomes *certainly clear*: the
cell box, grown by the margin plus each other country's territorial sea and boundary error,
misses that country's land (`land_touches`); and `verified` also needs its witness (below) to
be a cell whose centre lies in the licensed country, which proves the sound region touches it.

Only the `k_best` smallest caps are tested, which can only leave more cells unexcluded, so the
answer errs toward `inconclusive`. The runner cross-checks a sample against assess each run.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from enum import IntEnum

import numpy as np
import numpy.typing as npt
import shapely
from scipy.spatial import cKDTree

from geo.caps import FLOAT_MARGIN_KM, MIN_LANDMARKS
from geo.constants import (
    C_VACUUM_KM_PER_S,
    EARTH_MEAN_RADIUS_KM,
    KM_PER_DEG_LAT_MIN,
    KM_PER_DEG_LON_EQUATOR_MAX,
    SPHERE_DISTANCE_INFLATION,
)
from geo.geodesy import unit_vectors
from geo.regions import Region
from geo.sea import foreign_land
from sim.discs import DISC_MAX_KM, DiscVerdicts, disc_area_km2, disc_route_verified
from sim.errors import ScenarioError
from sim.sites import pairwise_km

logger = logging.getLogger(__name__)

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
Int32Array = npt.NDArray[np.int32]
Int8Array = npt.NDArray[np.int8]
BoolArray = npt.NDArray[np.bool_]
KM_PER_MS_RTT = C_VACUUM_KM_PER_S / 2.0 / 1000.0  # proof radius per ms of round trip
# Geodesic distance is at most this factor times the spherical (R1) distance (polar radius of
# curvature / R1 = 6399.59 / 6371.01, rounded up): used only to prove a cell centre is inside.
GEODESIC_OVER_SPHERE_MAX = 1.0046
_WITNESS_TRIES = 16


class FastVerdict(IntEnum):
    VERIFIED = 0
    VIOLATION = 1
    INCONCLUSIVE = 2
    DARK = 3


@dataclass(frozen=True, slots=True)
class CellGrid:
    lat_deg: FloatArray
    lon_deg: FloatArray
    half_lat_deg: float
    half_lon_deg: FloatArray
    area_km2: FloatArray
    covering_km: float
    xyz: FloatArray
    blocks: BlockLayout | None = None


@dataclass(frozen=True, slots=True)
class BlockLayout:
    """Cells grouped into blocks of about COARSE_FACTOR x COARSE_FACTOR cells.

    Every cell centre of a block lies within `reach_km` of the block centre, so by the
    triangle inequality a block farther than limit + reach from a landmark holds no cell
    centre within limit, and one nearer than limit - reach holds only cells within it.
    """

    xyz: FloatArray  # block centres
    cells: npt.NDArray[np.int32]  # cell indices, grouped by block
    start: IntArray  # block b's cells are cells[start[b] : start[b] + count[b]]
    count: IntArray
    area_km2: FloatArray
    reach_km: float

    def expand(self, blocks: npt.NDArray[np.int32]) -> npt.NDArray[np.int32]:
        """The cells of `blocks`, concatenated."""
        counts = self.count[blocks]
        total = int(counts.sum())
        if total == 0:
            return np.empty(0, dtype=np.int32)
        ends = np.cumsum(counts)
        offsets = np.repeat(self.start[blocks] - (ends - counts), counts)
        out: npt.NDArray[np.int32] = self.cells[np.arange(total, dtype=np.int64) + offsets]
        return out

    def all_of(self, flags: BoolArray) -> BoolArray:
        """Per block: is `flags` true for every one of its cells?"""
        return np.asarray(np.logical_and.reduceat(flags[self.cells], self.start), dtype=np.bool_)


COARSE_FACTOR = 4


def _block_layout(grid: CellGrid, spacing_km: float) -> BlockLayout:
    centres = build_grid(spacing_km * COARSE_FACTOR, with_blocks=False).xyz
    parent = cKDTree(centres).query(grid.xyz)[1].astype(np.int64)
    cos_reach = np.clip(np.einsum("ij,ij->i", grid.xyz, centres[parent]), -1.0, 1.0)
    # Blocks that are no cell's nearest are dropped: reduceat needs non-empty segments.
    # float32 cell distances round by < 1 m at 20,000 km; the 0.01 km added to the reach
    # covers that and the float64 arithmetic here.
    counts = np.bincount(parent, minlength=centres.shape[0])
    keep = counts > 0
    renumber = np.cumsum(keep) - 1
    parent = renumber[parent]
    counts = counts[keep]
    return BlockLayout(
        xyz=centres[keep],
        cells=np.argsort(parent, kind="stable").astype(np.int32),
        start=np.concatenate(([0], np.cumsum(counts)[:-1])).astype(np.int64),
        count=counts.astype(np.int64),
        area_km2=np.bincount(parent, weights=grid.area_km2).astype(np.float64),
        reach_km=float(np.arccos(cos_reach).max() * EARTH_MEAN_RADIUS_KM) + 0.01,
    )


def build_grid(spacing_km: float, with_blocks: bool = True) -> CellGrid:
    """Rows of equal latitude height; each row's cells about `spacing_km` wide at its widest."""
    rows = max(2, math.ceil(180.0 * KM_PER_DEG_LAT_MIN / spacing_km))
    step_lat = 180.0 / rows
    lats: list[FloatArray] = []
    lons: list[FloatArray] = []
    half_lons: list[FloatArray] = []
    areas: list[FloatArray] = []
    covering_km = 0.0
    radius2 = EARTH_MEAN_RADIUS_KM**2
    for row in range(rows):
        south = -90.0 + row * step_lat
        north = south + step_lat
        widest = math.cos(math.radians(min(abs(south), abs(north)) if south * north > 0 else 0.0))
        count = max(1, math.ceil(360.0 * widest * KM_PER_DEG_LON_EQUATOR_MAX / spacing_km))
        step_lon = 360.0 / count
        centre_lat = (south + north) / 2.0
        lons.append(-180.0 + step_lon * (np.arange(count, dtype=np.float64) + 0.5))
        lats.append(np.full(count, centre_lat))
        half_lons.append(np.full(count, step_lon / 2.0))
        band = math.sin(math.radians(north)) - math.sin(math.radians(south))
        areas.append(np.full(count, radius2 * math.radians(step_lon) * band))
        # Farthest point of a cell from its centre: one of its corners or edge midpoints.
        probe_lat = np.array([south, north, south, north, south, north, centre_lat])
        probe_lon = np.array([-1.0, -1.0, 1.0, 1.0, 0.0, 0.0, 1.0]) * step_lon / 2.0
        reach = pairwise_km(
            unit_vectors(np.array([centre_lat]), np.array([0.0])),
            unit_vectors(probe_lat, probe_lon),
        )
        covering_km = max(covering_km, float(reach.max()))
    lat = np.concatenate(lats)
    lon = np.concatenate(lons)
    grid = CellGrid(
        lat_deg=lat,
        lon_deg=lon,
        half_lat_deg=step_lat / 2.0,
        half_lon_deg=np.concatenate(half_lons),
        area_km2=np.concatenate(areas),
        covering_km=covering_km * 1.001 + 0.01,
        xyz=unit_vectors(lat, lon),
    )
    if not with_blocks:
        return grid
    return dataclasses.replace(grid, blocks=_block_layout(grid, spacing_km))


@dataclass(frozen=True, slots=True)
class CountryCells:
    inside: BoolArray  # cell certainly inside the country (sea-neutral: certainly clear)
    outside: BoolArray  # cell certainly outside
    block_inside: BoolArray  # every cell of the block certainly inside
    block_outside: BoolArray
    witness: BoolArray | None = None  # sea-neutral: cell centre inside the country
    discs: DiscVerdicts | None = None  # sea-neutral: the disc route (`sim.discs`)


@dataclass(frozen=True, slots=True)
class LandTouches:
    """Pairs (cell, country): the cell box grown by the margin may reach the country's land
    grown by its territorial sea and boundary error. Computed once for every country."""

    cells: IntArray
    country: npt.NDArray[np.str_]


def _grown_boxes(
    grid: CellGrid, index: IntArray, grow_km: FloatArray | float
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """West, south, east, north of the chosen cells' boxes grown by `grow_km` (conservative
    degree steps: the shortest latitude degree, longitude at the most poleward latitude)."""
    lat_deg = grid.lat_deg[index]
    grow_lat = grow_km / KM_PER_DEG_LAT_MIN
    south = np.maximum(lat_deg - grid.half_lat_deg - grow_lat, -90.0)
    north = np.minimum(lat_deg + grid.half_lat_deg + grow_lat, 90.0)
    worst_cos = np.cos(np.radians(np.minimum(np.maximum(np.abs(south), np.abs(north)), 89.0)))
    grow_lon = grow_km / (KM_PER_DEG_LON_EQUATOR_MAX * worst_cos)
    half_lon = np.minimum(grid.half_lon_deg[index] + grow_lon, 180.0)
    return grid.lon_deg[index] - half_lon, south, grid.lon_deg[index] + half_lon, north


def land_touches(grid: CellGrid, grow_km: float) -> LandTouches:
    """Every (cell, country) pair whose grown box and grown land may meet (`LandTouches`)."""
    land = foreign_land(())  # every bundled country
    every = np.arange(grid.lat_deg.size)
    west, south, east, north = _grown_boxes(grid, every, grow_km + land.max_margin_km)
    found_cells: list[IntArray] = []
    found_parts: list[IntArray] = []
    for shift in (-360.0, 0.0, 360.0):
        index = np.flatnonzero((east + shift >= -180.0) & (west + shift <= 180.0))
        boxes = shapely.box(west[index] + shift, south[index], east[index] + shift, north[index])
        box_of, part = land.tree.query(boxes)
        cells = index[box_of]
        # The tree paired boxes grown by the widest margin; test each part at its own.
        w, s, e, n = _grown_boxes(grid, cells, grow_km + land.margin_km[part])
        hit = shapely.intersects(land.parts[part], shapely.box(w + shift, s, e + shift, n))
        found_cells.append(cells[hit])
        found_parts.append(part[hit])
    parts = np.concatenate(found_parts)
    return LandTouches(np.concatenate(found_cells), land.country[parts])


def classify_cells(
    grid: CellGrid, region: Region, grow_km: float, land: LandTouches | None = None
) -> CountryCells:
    """Grow each cell box by `grow_km` plus the region's boundary error, then test it.

    With `land` (a sea-neutral licence of this one country) "inside" means certainly clear of
    every other country's land, and the cells whose centre lies in the country are witnesses.
    """
    geometry = region.geometry
    shapely.prepare(geometry)
    grow = grow_km + region.boundary_error_km
    west, south, east, north = _grown_boxes(grid, np.arange(grid.lat_deg.size), grow)
    min_lon, min_lat, max_lon, max_lat = geometry.bounds
    near_lat = (north >= min_lat) & (south <= max_lat)
    inside = np.zeros(grid.lat_deg.shape, dtype=np.bool_)
    touches = np.zeros(grid.lat_deg.shape, dtype=np.bool_)
    # A grown box may reach past +-180; its wrapped part is tested as a shifted copy.
    for shift in (-360.0, 0.0, 360.0):
        near = near_lat & (east + shift >= min_lon) & (west + shift <= max_lon)
        index = np.flatnonzero(near)
        if index.size == 0:
            continue
        boxes = shapely.box(west[index] + shift, south[index], east[index] + shift, north[index])
        touches[index] |= shapely.intersects(geometry, boxes)
        if shift == 0.0:
            inside[index] = shapely.contains(geometry, boxes)
    inside &= (west >= -180.0) & (east <= 180.0)
    outside = ~touches
    witness = None
    if land is not None:
        inside = np.ones(grid.lat_deg.shape, dtype=np.bool_)
        inside[land.cells[land.country != region.name]] = False
        witness = np.zeros(grid.lat_deg.shape, dtype=np.bool_)
        near = np.flatnonzero(
            (grid.lat_deg >= min_lat)
            & (grid.lat_deg <= max_lat)
            & (grid.lon_deg >= min_lon)
            & (grid.lon_deg <= max_lon)
        )
        witness[near] = shapely.contains_xy(geometry, grid.lon_deg[near], grid.lat_deg[near])
    blocks = grid.blocks
    if blocks is None:
        raise ScenarioError("classify_cells needs a grid built with blocks")
    return CountryCells(
        inside=inside,
        outside=outside,
        block_inside=blocks.all_of(inside),
        block_outside=blocks.all_of(outside),
        witness=witness,
        discs=None if land is None else DiscVerdicts(region),
    )


def margin_km_for(resolution_km: float) -> float:
    """The fast path's margin for the solver's resolution: geo.cap_polygon's cap polygons reach at
    most 0.57 % r (already in the threshold) plus FLOAT_MARGIN_KM plus the achieved resolution
    beyond the true disc; double the rest."""
    return 2.0 * (resolution_km + FLOAT_MARGIN_KM) + 1.0


@dataclass(frozen=True, slots=True)
class FastParams:
    margin_km: float  # geo's polygon slack, doubled
    k_best: int = 10
    robust_landmarks: int = 1
    processing_floor_ms: float = 0.0

    def __post_init__(self) -> None:
        # Exclusion counts are int8.
        if not 1 <= self.robust_landmarks + 1 <= self.k_best <= 127:
            raise ScenarioError("need 0 <= robust_landmarks < k_best <= 127")


class LandmarkField:
    """Each landmark's distance to every cell and block centre, and its cells sorted by it."""

    def __init__(self, grid: CellGrid, lat_deg: FloatArray, lon_deg: FloatArray) -> None:
        if grid.blocks is None:
            raise ScenarioError("LandmarkField needs a grid built with blocks")
        self.grid = grid
        self.blocks = grid.blocks
        self.lat_deg = np.asarray(lat_deg, dtype=np.float64)
        self.lon_deg = np.asarray(lon_deg, dtype=np.float64)
        self.xyz = unit_vectors(lat_deg, lon_deg)
        distance = pairwise_km(self.xyz, grid.xyz).astype(np.float32)
        self.distance_km = distance
        self.order = np.argsort(distance, axis=1).astype(np.int32)
        self.sorted_km = np.take_along_axis(distance, self.order, axis=1)
        # Row per cell: gathering a few landmarks for many cells reads contiguous memory.
        self.by_cell_km = np.ascontiguousarray(distance.T)
        self.block_distance_km = pairwise_km(self.xyz, self.blocks.xyz)


@dataclass(frozen=True, slots=True)
class FastOutcome:
    verdict: FastVerdict
    sound_area_upper_km2: float  # cells no tested cap excludes; >= the true sound area


def fast_verdict(
    field: LandmarkField,
    params: FastParams,
    cells: CountryCells,
    rtt_ms: FloatArray,
    site_km: FloatArray | None = None,
) -> FastOutcome:
    """One chip, one round: `rtt_ms` per landmark (NaN = no valid response).

    `site_km`: sphere distances from a declared site the caller knows lies in the licensed
    country to every landmark. Inside every cap, that point is a witness as good as a cell
    centre; it lets a region smaller than a cell (a co-located landmark's) be proven.
    """
    valid = np.flatnonzero(np.isfinite(rtt_ms))
    if valid.size == 0:
        return FastOutcome(FastVerdict.DARK, math.nan)
    if valid.size < MIN_LANDMARKS:  # geo refuses to judge one cap alone
        return FastOutcome(FastVerdict.INCONCLUSIVE, float(field.grid.area_km2.sum()))
    radius_km = np.maximum(rtt_ms[valid] - params.processing_floor_ms, 0.0) * KM_PER_MS_RTT
    site_in_region = site_km is not None and bool(
        (site_km[valid] * GEODESIC_OVER_SPHERE_MAX <= radius_km).all()
    )
    threshold_km = radius_km * SPHERE_DISTANCE_INFLATION + params.margin_km + field.grid.covering_km
    pick = np.argsort(threshold_km)[: params.k_best]
    landmarks = valid[pick]
    limits = threshold_km[pick]
    need = params.robust_landmarks + 1
    # A region smaller than a cell (a co-located landmark's): geo judges the caps' discs.
    if cells.discs is not None and landmarks.size >= need:
        # The sphere radius within which geo's region lies, per cap (smallest first).
        disc_km = radius_km[pick[:need]] * SPHERE_DISTANCE_INFLATION + params.margin_km
        if disc_km[-1] <= DISC_MAX_KM and disc_route_verified(
            cells.discs,
            field.lat_deg[landmarks[:need]],
            field.lon_deg[landmarks[:need]],
            disc_km,
            site_in_region or _landmark_witness(field, cells.discs, valid, radius_km, landmarks[0]),
        ):
            # After dropping any f landmarks the region may fill the largest of these discs.
            return FastOutcome(FastVerdict.VERIFIED, disc_area_km2(float(disc_km[-1])))
    # Cells within reach of the smallest cap: the only ones that can be in the region.
    weak = _unexcluded(field, landmarks, limits, 0, need)
    open_cells = weak.cells[weak.cell_count == 0]
    open_blocks = weak.blocks[weak.block_count == 0]
    area_km2 = float(
        field.grid.area_km2[open_cells].sum() + field.blocks.area_km2[open_blocks].sum()
    )
    # With fewer caps than `need`, cells beyond the smallest cap lack enough exclusions.
    enough = landmarks.size >= need
    inside = enough and weak.all_inside(cells)
    outside = enough and weak.all_outside(cells)
    # Most chips end here: a cell that is neither certainly inside nor certainly outside
    # leaves them inconclusive whatever the rest says, so the witness search is skipped.
    if not (inside or outside):
        return FastOutcome(FastVerdict.INCONCLUSIVE, area_km2)
    candidates = np.concatenate((open_cells, field.blocks.expand(open_blocks)))
    if inside and cells.witness is not None:
        # Sea-neutral: a point of the sound region in the country proves the region touches it.
        chosen = candidates[cells.witness[candidates]]
        inside = site_in_region or _has_witness(
            field, valid, radius_km, chosen, (landmarks, limits)
        )
        if inside:
            outside = False  # a witness in the country rules `violation` out
        elif not outside:
            return FastOutcome(FastVerdict.INCONCLUSIVE, area_km2)
    if not (
        site_in_region or _has_witness(field, valid, radius_km, candidates, (landmarks, limits))
    ):
        return FastOutcome(FastVerdict.INCONCLUSIVE, area_km2)
    # Robustness: a cell excluded by fewer than `need` caps lies within reach of one of the
    # `need` smallest caps. Those beyond the first are only examined for a chip that could
    # still be proven either way.
    for rank in range(1, min(need, landmarks.size)):
        if not (inside or outside):
            break
        more = _unexcluded(field, landmarks, limits, rank, need)
        inside = inside and more.all_inside(cells)
        outside = outside and more.all_outside(cells)
    if inside:
        return FastOutcome(FastVerdict.VERIFIED, area_km2)
    if outside:
        return FastOutcome(FastVerdict.VIOLATION, area_km2)
    return FastOutcome(FastVerdict.INCONCLUSIVE, area_km2)


@dataclass(frozen=True, slots=True)
class _Selection:
    """Cells, and whole blocks of cells, with how many tested caps exclude each."""

    cells: Int32Array
    cell_count: Int8Array
    blocks: Int32Array  # every cell of such a block has the block's count
    block_count: Int8Array

    def all_inside(self, country_cells: CountryCells) -> bool:
        return bool(
            country_cells.inside[self.cells].all() and country_cells.block_inside[self.blocks].all()
        )

    def all_outside(self, country_cells: CountryCells) -> bool:
        return bool(
            country_cells.outside[self.cells].all()
            and country_cells.block_outside[self.blocks].all()
        )


_NO_BLOCKS = np.empty(0, dtype=np.int32)
_NO_COUNTS = np.empty(0, dtype=np.int8)
# Below this many cells in reach of the pivot cap, testing cells directly is cheaper.
_BLOCKS_MIN_CELLS = 400


def _unexcluded(
    field: LandmarkField, landmarks: IntArray, limits: FloatArray, rank: int, need: int
) -> _Selection:
    """Cells within reach of cap `rank` but of no smaller cap, excluded by < `need` caps.

    For a large cap, blocks come first: a block that no tested cap boundary crosses is kept
    or dropped whole (its cells all share one count), and only the cells of blocks that a
    boundary may cross are tested one by one. Either way the same cells are selected. All
    tested caps are compared at once (a few array operations per chip, not per cap).
    """
    lm = landmarks[rank]
    reach = int(np.searchsorted(field.sorted_km[lm], _float32_at_most(limits[rank]), "right"))
    if reach < _BLOCKS_MIN_CELLS:
        cells, count = _filter_cells(
            field, field.order[lm, :reach], landmarks, limits, rank=rank, need=need
        )
        return _Selection(cells, count, _NO_BLOCKS, _NO_COUNTS)
    reach_km = field.blocks.reach_km
    candidates = np.flatnonzero(field.block_distance_km[lm] <= limits[rank] + reach_km)
    distance = field.block_distance_km[landmarks[:, None], candidates[None, :]]
    limit = limits[:, None]
    # Per cap and block: every cell centre beyond the cap, or every one within it.
    beyond = distance - reach_km > limit
    within = distance + reach_km <= limit
    count = rank + beyond[rank + 1 :].sum(axis=0, dtype=np.int8)
    # A block whose cells are all within a smaller cap holds none of the cells sought.
    keep = (count < need) & ~within[:rank].any(axis=0)
    whole = within[rank] & (beyond | within).all(axis=0) & beyond[:rank].all(axis=0)
    blocks = candidates[keep & whole].astype(np.int32)
    mixed = field.blocks.expand(candidates[keep & ~whole].astype(np.int32))
    cells, cell_count = _filter_cells(field, mixed, landmarks, limits, rank=rank, need=need)
    return _Selection(cells, cell_count, blocks, count[keep & whole])


def _float32_at_most(value: float) -> np.float32:
    """The largest float32 <= value: for float32 d, d <= it exactly when d <= value.

    (A float64 key would make searchsorted convert the whole float32 row on every call.)
    """
    rounded = np.float32(value)
    # float(): compared as float32, a Python float would round first and hide the excess.
    return np.nextafter(rounded, np.float32(-np.inf)) if float(rounded) > value else rounded


def _filter_cells(
    field: LandmarkField,
    cells: Int32Array,
    landmarks: IntArray,
    limits: FloatArray,
    *,
    rank: int,
    need: int,
) -> tuple[Int32Array, Int8Array]:
    """Of `cells`, those within reach of cap `rank` and beyond every smaller cap that are
    excluded by < `need` caps, with how many tested caps exclude each."""
    beyond = field.distance_km[landmarks[:, None], cells[None, :]] > limits[:, None]
    count = rank + beyond[rank + 1 :].sum(axis=0, dtype=np.int8)
    keep = (count < need) & ~beyond[rank] & beyond[:rank].all(axis=0)
    return cells[keep], count[keep]


def _has_witness(
    field: LandmarkField,
    valid: IntArray,
    radius_km: FloatArray,
    open_cells: npt.NDArray[np.int32],
    tested: tuple[IntArray, FloatArray],
) -> bool:
    """Is some cell centre inside every valid cap? Then the sound region is not empty."""
    if open_cells.size == 0:
        return False
    landmarks, limits = tested
    depth_km = (field.distance_km[landmarks[:, None], open_cells[None, :]] - limits[:, None]).max(
        axis=0
    )
    tries = open_cells[np.argsort(depth_km)[:_WITNESS_TRIES]]
    geodesic_upper = field.by_cell_km[tries][:, valid].T * GEODESIC_OVER_SPHERE_MAX
    return bool((geodesic_upper <= radius_km[:, None]).all(axis=0).any())


def _landmark_witness(
    field: LandmarkField,
    discs: DiscVerdicts,
    valid: IntArray,
    radius_km: FloatArray,
    landmark: int,
) -> bool:
    """Does the (claimed) position of `landmark` lie inside every valid cap and in the
    licensed country? Then it is a point of the sound region there, as geo computes it."""
    sphere_km = pairwise_km(field.xyz[landmark : landmark + 1], field.xyz[valid])[0]
    if not bool((sphere_km * GEODESIC_OVER_SPHERE_MAX <= radius_km).all()):
        return False
    return discs.inside(float(field.lat_deg[landmark]), float(field.lon_deg[landmark]))
