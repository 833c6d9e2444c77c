"""Regions: countries by ISO 3166-1 alpha-3 code and custom RFC 7946 GeoJSON geometries.

Country boundaries are Natural Earth 4.1 admin-0 at 1:50m (public domain), shipped as
`geo/data/countries.json.gz` (parts reconciled with 1:10m: islets added) and built by
`scripts/build_boundaries.py`; see `geo/data/ATTRIBUTION.md`. Geometries are shapely objects in
lon/lat degrees with every polygon inside [-180, 180]: anything that crosses the antimeridian is
split there.
"""

from __future__ import annotations

import difflib
import functools
import gzip
import json
import logging
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, NoReturn

import numpy as np
import shapely
import shapely.affinity
from shapely.geometry import MultiPolygon, Polygon, box
from shapely.geometry.base import BaseGeometry

from geo.errors import InvalidGeometryError, UnknownCountryError

logger = logging.getLogger(__name__)

_DATA_FILE = "countries.json.gz"
_WORLD_BOXES = tuple(
    (shift_deg, box(-180.0 + shift_deg, -90.0, 180.0 + shift_deg, 90.0))
    for shift_deg in (-360.0, 0.0, 360.0)
)


@dataclass(frozen=True, slots=True)
class Region:
    """A named area. `boundary_error_km` bounds how far the drawn border may lie from the real one.

    For bundled countries it is an upper bound of the symmetric (Hausdorff) distance between the
    shipped border and Natural Earth 1:10m's, plus 5.3 km for 1:10m's own error (docs/geo.md);
    for custom GeoJSON it is 0 (the geometry is the policy). A margin in km: consumers that must
    not under-state a region grow it (or shrink it) by it.
    """

    name: str
    geometry: BaseGeometry
    boundary_error_km: float = 0.0


@functools.cache
def _dataset() -> dict[str, Any]:
    raw = resources.files("geo").joinpath("data", _DATA_FILE).read_bytes()
    data: dict[str, Any] = json.loads(gzip.decompress(raw))
    logger.debug("loaded %d country boundaries from %s", len(data["countries"]), data["source"])
    return data


def country_boundary_error_km() -> float:
    """Worst per-country `boundary_error_km` (km) of the bundled borders."""
    return float(_dataset()["boundary_error_km"])


def country_codes() -> tuple[str, ...]:
    """Every alpha-3 code with bundled boundaries, sorted (includes XKX Kosovo, KAS Siachen)."""
    return tuple(sorted(_dataset()["countries"]))


def country_name(iso3: str) -> str:
    return str(_country_record(iso3)["name"])


def country(iso3: str) -> Region:
    """The bundled boundary of one country; raises UnknownCountryError with near matches."""
    code = iso3.strip().upper() if isinstance(iso3, str) else ""
    if code not in _dataset()["countries"]:
        _raise_unknown(iso3)
    return _country_region(code)


def _raise_unknown(iso3: object) -> NoReturn:
    countries: Mapping[str, Any] = _dataset()["countries"]
    text = str(iso3).strip()
    by_name = {str(v["name"]).upper(): k for k, v in countries.items()}
    guesses = difflib.get_close_matches(text.upper(), list(countries), n=3, cutoff=0.5)
    guesses += [
        by_name[n] for n in difflib.get_close_matches(text.upper(), list(by_name), n=3, cutoff=0.6)
    ]
    hints = ", ".join(f"{g} ({countries[g]['name']})" for g in dict.fromkeys(guesses))
    suffix = f"; did you mean {hints}?" if hints else "; use an ISO 3166-1 alpha-3 code like DEU"
    raise UnknownCountryError(f"unknown country code {text!r}{suffix}")


def _country_record(iso3: str) -> Mapping[str, Any]:
    code = iso3.strip().upper()
    countries: Mapping[str, Any] = _dataset()["countries"]
    if code not in countries:
        _raise_unknown(iso3)
    record: Mapping[str, Any] = countries[code]
    return record


@functools.cache
def _country_region(code: str) -> Region:
    data = _dataset()
    scale = np.asarray(data["transform"]["scale"], dtype=np.float64)
    translate = np.asarray(data["transform"]["translate"], dtype=np.float64)
    polygons = []
    for rings in data["countries"][code]["polygons"]:
        coords = [
            np.cumsum(np.asarray(r, dtype=np.int64).reshape(-1, 2), axis=0) * scale + translate
            for r in rings
        ]
        polygons.append(Polygon(coords[0], coords[1:]))
    geometry = polygons[0] if len(polygons) == 1 else MultiPolygon(polygons)
    if geometry.bounds[1] < -90.0:
        # The quantization grid puts Antarctica's south-pole closure 0.0007 deg below -90.
        geometry = _polygonal(shapely.clip_by_rect(geometry, -180.0, -90.0, 180.0, 90.0))
    return Region(code, geometry, float(data["countries"][code]["error_km"]))


# --- custom GeoJSON -------------------------------------------------------------------------


def region_from_geojson(obj: Mapping[str, Any], name: str | None = None) -> Region:
    """Parse an RFC 7946 Polygon, MultiPolygon, GeometryCollection, Feature or FeatureCollection.

    Read exactly as RFC 7946 defines it: rings closed with >= 4 positions, lon in [-180, 180],
    lat in [-90, 90], every edge a straight line in lon/lat (so a box from lon -100 to 100 is that
    box, whatever the winding). A geometry that crosses the antimeridian must be written cut in two
    there (section 3.1.9); a longitude beyond +-180 is refused. Holes must lie inside their exterior
    ring and only remove area. Self-intersecting rings are repaired with shapely.make_valid.
    """
    if not isinstance(obj, Mapping):
        raise InvalidGeometryError(f"GeoJSON must be an object, got {type(obj).__name__}")
    label = name or _feature_name(obj) or "custom"
    polygons = _polygons_of(obj, "$")
    if not polygons:
        raise InvalidGeometryError("GeoJSON holds no polygon")
    geometry = shapely.unary_union(polygons)
    if geometry.is_empty or geometry.area <= 0.0:
        raise InvalidGeometryError("GeoJSON polygons have zero area")
    return Region(label, geometry)


def _feature_name(obj: Mapping[str, Any]) -> str | None:
    props = obj.get("properties")
    if obj.get("type") == "Feature" and isinstance(props, Mapping):
        value = props.get("name")
        return str(value) if value is not None else None
    return None


def _polygons_of(obj: Any, where: str) -> list[BaseGeometry]:
    if not isinstance(obj, Mapping):
        raise InvalidGeometryError(f"{where}: expected a GeoJSON object")
    kind = obj.get("type")
    if kind == "FeatureCollection":
        features = _sequence(obj.get("features"), f"{where}.features")
        return [
            p for i, f in enumerate(features) for p in _polygons_of(f, f"{where}.features[{i}]")
        ]
    if kind == "Feature":
        geometry = obj.get("geometry")
        if geometry is None:
            raise InvalidGeometryError(f"{where}.geometry: a Feature needs a geometry")
        return _polygons_of(geometry, f"{where}.geometry")
    if kind == "GeometryCollection":
        members = _sequence(obj.get("geometries"), f"{where}.geometries")
        return [
            p for i, g in enumerate(members) for p in _polygons_of(g, f"{where}.geometries[{i}]")
        ]
    coordinates = obj.get("coordinates")
    if kind == "Polygon":
        return [_polygon(coordinates, f"{where}.coordinates")]
    if kind == "MultiPolygon":
        parts = _sequence(coordinates, f"{where}.coordinates")
        return [_polygon(p, f"{where}.coordinates[{i}]") for i, p in enumerate(parts)]
    raise InvalidGeometryError(
        f"{where}: unsupported GeoJSON type {kind!r} (need Polygon, MultiPolygon, "
        "GeometryCollection, Feature or FeatureCollection)"
    )


def _sequence(value: Any, where: str) -> Sequence[Any]:
    if not isinstance(value, list | tuple):
        raise InvalidGeometryError(f"{where}: expected an array")
    return value


def _polygon(value: Any, where: str) -> BaseGeometry:
    rings = [_ring(r, f"{where}[{i}]") for i, r in enumerate(_sequence(value, where))]
    if not rings:
        raise InvalidGeometryError(f"{where}: a polygon needs an exterior ring")
    shell = _planar(rings[0], f"{where}[0]")
    holes = []
    for i, ring in enumerate(rings[1:], start=1):
        hole = _planar(ring, f"{where}[{i}]")
        if hole.is_empty:
            continue  # a zero-area hole removes nothing
        if not shell.covers(hole):
            raise InvalidGeometryError(
                f"{where}[{i}]: hole is not inside the exterior ring {where}[0] (RFC 7946 3.1.6)"
            )
        holes.append(hole)
    return _polygonal(shell.difference(shapely.unary_union(holes))) if holes else shell


def _planar(ring: np.ndarray, where: str) -> BaseGeometry:
    """A ring's area with straight lon/lat edges (RFC 7946): no unwrapping, no great circles."""
    if np.any(np.abs(np.diff(ring[:, 0])) > 180.0):
        # Valid and meant literally by the RFC, but an older convention meant the short way
        # across the antimeridian: say which reading was taken.
        logger.info("%s: an edge spans more than 180 deg of longitude; taken as drawn", where)
    return _polygonal(shapely.make_valid(Polygon(ring)))


def _ring(value: Any, where: str) -> np.ndarray:
    positions = _sequence(value, where)
    if len(positions) < 4:
        raise InvalidGeometryError(f"{where}: a linear ring needs >= 4 positions")
    coords = np.empty((len(positions), 2), dtype=np.float64)
    for i, position in enumerate(positions):
        coords[i] = _position(position, f"{where}[{i}]")
    if not np.array_equal(coords[0], coords[-1]):
        raise InvalidGeometryError(f"{where}: ring is not closed (first position != last)")
    return coords


def _position(value: Any, where: str) -> tuple[float, float]:
    if not isinstance(value, list | tuple) or len(value) not in (2, 3):
        raise InvalidGeometryError(f"{where}: a position is [lon, lat] or [lon, lat, alt]")
    if any(isinstance(v, bool) or not isinstance(v, int | float) for v in value):
        raise InvalidGeometryError(f"{where}: coordinates must be numbers")
    lon, lat = float(value[0]), float(value[1])
    if not (math.isfinite(lon) and math.isfinite(lat)):
        raise InvalidGeometryError(f"{where}: coordinates must be finite")
    if not -180.0 <= lon <= 180.0:
        raise InvalidGeometryError(
            f"{where}: longitude {lon} outside [-180, 180]; cut geometry that crosses the "
            "antimeridian in two there (RFC 7946 3.1.9)"
        )
    if not -90.0 <= lat <= 90.0:
        raise InvalidGeometryError(f"{where}: latitude {lat} outside [-90, 90]")
    return lon, lat


# --- antimeridian ---------------------------------------------------------------------------


def split_antimeridian(rings: Sequence[np.ndarray]) -> BaseGeometry:
    """A valid (multi)polygon in [-180, 180] from spherical lon/lat rings (exterior, then holes).

    For spherical sources (world-atlas's TopoJSON, discs around a point), not for GeoJSON, whose
    edges are straight in lon/lat (see region_from_geojson).

    Consecutive vertices whose longitudes differ by more than 180 degrees are joined the short way,
    across the antimeridian. A ring whose unwrapped longitude winds a full 360 degrees encircles a
    pole and is closed along that pole (the pole on the side of its mean latitude). The polygon is
    the symmetric difference of its closed rings: exterior minus holes in the ordinary case, and
    the band between two pole-encircling rings when a spherical polygon is written that way
    (Antarctica in world-atlas's TopoJSON: a ring at -89.999 with the coast as its "hole").
    """
    shell = _closed_planar(rings[0])
    low_deg = float(shell.bounds[0])
    planar = shell
    for ring in rings[1:]:
        hole = _closed_planar(ring)
        shift_deg = -360.0 * math.floor((float(hole.bounds[0]) - low_deg) / 360.0)
        planar = planar.symmetric_difference(shapely.affinity.translate(hole, xoff=shift_deg))
    planar = _polygonal(planar)
    if planar.bounds[0] >= -180.0 and planar.bounds[2] <= 180.0:
        return planar
    pieces = [
        shapely.affinity.translate(planar.intersection(world), xoff=-shift_deg)
        for shift_deg, world in _WORLD_BOXES
    ]
    return _polygonal(shapely.unary_union([p for p in pieces if not p.is_empty]))


def _closed_planar(ring: np.ndarray) -> BaseGeometry:
    coords = _unwrap(ring)
    if abs(coords[-1, 0] - coords[0, 0]) > 180.0:
        pole_deg = math.copysign(90.0, float(coords[:, 1].mean()))
        coords = np.vstack(
            (coords, [[coords[-1, 0], pole_deg], [coords[0, 0], pole_deg], coords[0]])
        )
    return _polygonal(shapely.make_valid(Polygon(coords)))


def _unwrap(ring: np.ndarray) -> np.ndarray:
    lon = ring[:, 0].copy()
    steps = np.diff(lon)
    lon[1:] = lon[0] + np.cumsum(steps - 360.0 * np.round(steps / 360.0))
    return np.column_stack((lon, ring[:, 1]))


def _polygonal(geometry: BaseGeometry) -> BaseGeometry:
    """Only the areal parts of make_valid's output (it may add slivers of lines and points)."""
    if isinstance(geometry, Polygon | MultiPolygon):
        return geometry
    parts: Iterable[BaseGeometry] = shapely.get_parts(geometry)
    polygons = [g for g in parts if isinstance(g, Polygon | MultiPolygon) and not g.is_empty]
    return shapely.unary_union(polygons) if polygons else Polygon()
