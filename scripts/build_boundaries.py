"""Build geo/data/countries.json.gz from the world-atlas npm package (Natural Earth 4.1 admin-0).

Usage:
    .venv/bin/python scripts/build_boundaries.py [--tarball world-atlas-2.0.2.tgz] [--out PATH]

Without --tarball the script runs `npm pack world-atlas@2.0.2` (the npm registry's ordinary client)
into a temporary folder. Either way the tarball's sha512 is checked against the registry's
published integrity, so the output is reproducible byte for byte.

Source: world-atlas@2.0.2 `countries-50m.json`, a TopoJSON redistribution of Natural Earth 4.1.0
"Admin 0 - Countries" at 1:50m (public domain), quantized to 1e5 steps per axis. We decode the
arcs exactly (no further simplification), map ISO 3166-1 numeric ids to alpha-3 with pycountry and
apply the explicit fixes in `_UNNUMBERED` for features without a numeric id.

Parts are reconciled with Natural Earth 1:10m (`countries-10m.json` from the same tarball): a
1:10m part (an islet) that touches nothing of the country's 1:50m drawing is added, and a 1:50m
part that touches nothing of its 1:10m drawing is dropped, so that no island lies hundreds of km
from the border that should contain it.

Each country then records `error_km`, a bound on how far its shipped border may lie from the true
one: the symmetric (Hausdorff) distance between the shipped border and the 1:10m border, over
every part and both directions (densified search, an upper bound), plus an allowance for 1:10m's
own error (`REFERENCE_ALLOWANCE_KM` plus half its quantization step), which is also every
country's minimum. A country that 1:10m lacks gets the worst bound of all. The file's
`boundary_error_km` is the worst bound. Consumers buffer by it; see docs/geo.md.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import json
import math
import subprocess
import sys
import tarfile
import tempfile
from collections import defaultdict
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pycountry
import shapely
from scipy.spatial import cKDTree
from shapely.geometry import MultiPolygon, Polygon

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from geo.regions import split_antimeridian

PACKAGE = "world-atlas@2.0.2"
TARBALL_SHA512 = (
    "IXfV0qwlKXpckz1FhwXVwKRjiIhOnWttOskm5CtxMsjgE/MXAYRHWJqgXOpM8IkcPBoXnyTU5lFHcYa5ChG0LQ=="
)
MEMBER_50M = "package/countries-50m.json"
MEMBER_10M = "package/countries-10m.json"
EARTH_RADIUS_KM = 6371.0088
# Natural Earth publishes no positional accuracy for 1:10m. The allowance is the US National Map
# Accuracy Standard at that scale: 1/50 inch (0.508 mm) on the map at 1:10,000,000 = 5.08 km (a
# 90 % criterion for well-defined points; borders drawn across featureless terrain can be worse).
REFERENCE_ALLOWANCE_KM = 5.08
# Borders are searched as points at most this far apart (degrees, <= 1.12 km on the ground): the
# distance from a sampled point to the nearest sampled point of the other border over-states the
# distance to that border, and the unsampled stretch between two points adds at most half a step.
DENSIFY_STEP_DEG = 0.01
DENSIFY_HALF_STEP_KM = 0.5 * DENSIFY_STEP_DEG * math.pi / 180.0 * EARTH_RADIUS_KM

# Features that carry no ISO numeric id. ISO 3166-1 assigns the de-facto states to their de-jure
# country, so a licence naming SOM or CYP covers them; Kosovo gets the widely used user-assigned
# code XKX; Australia's Indian Ocean Territories are split into Christmas Island and the Cocos
# Islands; Siachen (disputed India/Pakistan) keeps Natural Earth's own non-ISO code so that it is
# in neither country.
_UNNUMBERED: Mapping[str, str] = {
    "Kosovo": "XKX",
    "Somaliland": "SOM",
    "N. Cyprus": "CYP",
    "Siachen Glacier": "KAS",
    # Only in the 1:10m reference (used to measure the error bound): enclaves inside an ISO
    # country that 1:50m folds into it.
    "Baikonur": "KAZ",
    "USNB Guantanamo Bay": "CUB",
    "Cyprus U.N. Buffer Zone": "CYP",
    "Dhekelia": "CYP",
    "Akrotiri": "CYP",
}
_EXTRA_NAMES: Mapping[str, str] = {"XKX": "Kosovo", "KAS": "Siachen Glacier"}
_INDIAN_OCEAN_SPLIT_LON_DEG = 100.0  # Cocos (96.8 E) west of it, Christmas Island (105.6 E) east.


def fetch_tarball(path: Path | None) -> bytes:
    if path is None:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(
                ["npm", "pack", PACKAGE, "--pack-destination", tmp, "--silent"],
                check=True,
                stdout=subprocess.DEVNULL,
            )
            (tgz,) = Path(tmp).glob("*.tgz")
            data = tgz.read_bytes()
    else:
        data = path.read_bytes()
    digest = base64.b64encode(hashlib.sha512(data).digest()).decode()
    if digest != TARBALL_SHA512:
        raise SystemExit(f"{PACKAGE} tarball sha512 mismatch: got {digest}")
    return data


def read_member(tarball: bytes, member: str) -> dict[str, Any]:
    with tarfile.open(fileobj=io.BytesIO(tarball), mode="r:gz") as tar:
        handle = tar.extractfile(member)
        if handle is None:
            raise SystemExit(f"{member} missing from {PACKAGE}")
        return dict(json.load(handle))


def decode_arcs(topology: Mapping[str, Any]) -> list[np.ndarray]:
    """Absolute quantized integer positions of every arc (TopoJSON arcs are delta-encoded)."""
    return [np.cumsum(np.asarray(arc, dtype=np.int64), axis=0) for arc in topology["arcs"]]


def ring_positions(arc_ids: Sequence[int], arcs: Sequence[np.ndarray]) -> np.ndarray:
    parts: list[np.ndarray] = []
    for index in arc_ids:
        # A negative index ~i means arc i reversed; consecutive arcs share their joining point.
        arc = arcs[index] if index >= 0 else arcs[~index][::-1]
        parts.append(arc if not parts else arc[1:])
    return np.concatenate(parts)


def feature_polygons(geometry: Mapping[str, Any]) -> list[list[list[int]]]:
    if geometry["type"] == "Polygon":
        return [geometry["arcs"]]
    if geometry["type"] == "MultiPolygon":
        return list(geometry["arcs"])
    raise SystemExit(f"unexpected geometry type {geometry['type']}")


def alpha3_for(feature: Mapping[str, Any], polygon_rings: np.ndarray | None = None) -> str:
    name = str(feature["properties"]["name"])
    if "id" not in feature:
        if name == "Indian Ocean Ter.":
            if polygon_rings is None:
                raise SystemExit("Indian Ocean Ter. needs per-polygon assignment")
            return "CCK" if polygon_rings[:, 0].mean() < _INDIAN_OCEAN_SPLIT_LON_DEG else "CXR"
        if name not in _UNNUMBERED:
            raise SystemExit(f"feature {name!r} has no ISO numeric id and no explicit code")
        return _UNNUMBERED[name]
    record = pycountry.countries.get(numeric=str(feature["id"]))
    if record is None:
        raise SystemExit(f"ISO numeric {feature['id']} ({name}) unknown to pycountry")
    return str(record.alpha_3)


def to_degrees(positions: np.ndarray, transform: Mapping[str, Any]) -> np.ndarray:
    scale = np.asarray(transform["scale"], dtype=np.float64)
    translate = np.asarray(transform["translate"], dtype=np.float64)
    return np.asarray(positions * scale + translate)


def country_rings(
    topology: Mapping[str, Any], *, skip_unknown: bool = False
) -> dict[str, list[list[np.ndarray]]]:
    """alpha-3 -> polygons -> rings of absolute quantized (x, y) integer positions.

    skip_unknown drops unnumbered features we have no code for (the 1:10m reference has a dozen
    reefs and bases that the shipped 1:50m data does not carry).
    """
    arcs = decode_arcs(topology)
    result: dict[str, list[list[np.ndarray]]] = defaultdict(list)
    for feature in topology["objects"]["countries"]["geometries"]:
        name = feature["properties"]["name"]
        known = "id" in feature or name in _UNNUMBERED or name == "Indian Ocean Ter."
        if skip_unknown and not known:
            continue
        for polygon in feature_polygons(feature):
            rings = [ring_positions(ring, arcs) for ring in polygon]
            result[alpha3_for(feature, rings[0])].append(rings)
    return dict(result)


def unit_vectors(lon_lat_deg: np.ndarray) -> np.ndarray:
    lon = np.radians(lon_lat_deg[:, 0])
    lat = np.radians(lon_lat_deg[:, 1])
    return np.column_stack((np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)))


def polygon_parts(geometry: Any) -> list[Polygon]:
    parts: list[Polygon] = []
    for part in shapely.get_parts(geometry):
        if isinstance(part, Polygon):
            if not part.is_empty:
                parts.append(part)
        elif part.geom_type in ("MultiPolygon", "GeometryCollection"):
            parts.extend(polygon_parts(part))
    return parts


def border_rings(geometry: Any) -> list[np.ndarray]:
    """The lon/lat rings (exteriors and holes) of every part."""
    return [
        np.asarray(ring.coords, dtype=np.float64)
        for part in polygon_parts(geometry)
        for ring in (part.exterior, *part.interiors)
    ]


def densified(rings: Sequence[np.ndarray]) -> np.ndarray:
    """Points along the rings at most DENSIFY_STEP_DEG apart. An edge jumping more than 180
    degrees of longitude (a raw TopoJSON ring crossing the antimeridian) keeps only its ends."""
    chunks: list[np.ndarray] = []
    for xy in rings:
        if len(xy) < 2:
            chunks.append(xy)
            continue
        steps = np.diff(xy, axis=0)
        counts = np.maximum(1, np.ceil(np.hypot(*steps.T) / DENSIFY_STEP_DEG)).astype(int)
        counts[np.abs(steps[:, 0]) > 180.0] = 1
        fraction = np.concatenate([np.arange(n) / n for n in counts])
        start = np.repeat(xy[:-1], counts, axis=0)
        chunks.append(start + np.repeat(steps, counts, axis=0) * fraction[:, None])
        chunks.append(xy[-1:])
    return np.concatenate(chunks) if chunks else np.empty((0, 2))


def directed_distance_km(from_xy: np.ndarray, to_xy: np.ndarray) -> float:
    """Largest great-circle distance from a point of `from_xy` to its nearest in `to_xy`."""
    chord, _ = cKDTree(unit_vectors(to_xy)).query(unit_vectors(from_xy))
    arc_km = 2.0 * np.arcsin(np.clip(np.asarray(chord) / 2.0, 0.0, 1.0)) * EARTH_RADIUS_KM
    return float(arc_km.max())


def border_distance_km(shipped: Any, reference_rings: Sequence[np.ndarray]) -> float:
    """Upper bound of the Hausdorff distance between the shipped border and the reference
    border (every part, both ways), km."""
    shipped_xy, reference_xy = densified(border_rings(shipped)), densified(reference_rings)
    measured_km = max(
        directed_distance_km(reference_xy, shipped_xy),
        directed_distance_km(shipped_xy, reference_xy),
    )
    return measured_km + DENSIFY_HALF_STEP_KM


def reconcile_parts(coarse: Any, fine: Any, transform: Mapping[str, Any]) -> Any:
    """The 1:50m parts that touch the 1:10m drawing, plus the 1:10m parts that touch nothing of
    the 1:50m one (islets 1:50m leaves out), the latter snapped to the 1:50m grid: a part too
    small for it becomes the grid box around it."""
    kept = [p for p in polygon_parts(coarse) if p.intersects(fine)]
    added = [on_grid(p, transform) for p in polygon_parts(fine) if not p.intersects(coarse)]
    return shapely.unary_union(kept + added) if kept or added else coarse


def collapsed_rings(
    polygons: list[list[np.ndarray]], transform: Mapping[str, Any]
) -> list[np.ndarray]:
    """Exterior rings (lon/lat) that the TopoJSON grid collapsed to a line or a point: a real
    part all the same (Vatican City at 1:10m, islets), which `merged_country` cannot draw."""
    rings = [to_degrees(rings[0], transform) for rings in polygons]
    return [r for r in rings if len(r) < 4 or shapely.make_valid(Polygon(r)).area == 0.0]


def on_grid(part: Polygon, transform: Mapping[str, Any]) -> Polygon:
    ring = quantize(np.asarray(part.exterior.coords), transform)
    snapped = Polygon(to_degrees(ring, transform))
    if snapped.is_valid and snapped.area > 0.0:
        return snapped
    scale = np.asarray(transform["scale"], dtype=np.float64)
    translate = np.asarray(transform["translate"], dtype=np.float64)
    low = np.floor((np.asarray(part.bounds[:2]) - translate) / scale)
    high = np.maximum(np.ceil((np.asarray(part.bounds[2:]) - translate) / scale), low + 1)
    return shapely.box(*(low * scale + translate), *(high * scale + translate))


def quantize(lon_lat_deg: np.ndarray, transform: Mapping[str, Any]) -> np.ndarray:
    scale = np.asarray(transform["scale"], dtype=np.float64)
    translate = np.asarray(transform["translate"], dtype=np.float64)
    return np.rint((lon_lat_deg - translate) / scale).astype(np.int64)


def encode_ring(ring: np.ndarray) -> list[int]:
    """Flat delta-encoded x, y list of a closed ring (first point repeated last)."""
    closed = ring if np.array_equal(ring[0], ring[-1]) else np.vstack((ring, ring[:1]))
    deltas = np.diff(closed, axis=0, prepend=np.zeros((1, 2), dtype=np.int64))
    return [int(v) for v in deltas.reshape(-1)]


def shapely_country(polygons: list[list[np.ndarray]], transform: Mapping[str, Any]) -> Any:
    return decoded_geometry(
        encode_geometry(merged_country(polygons, transform), transform), transform
    )


def merged_country(polygons: list[list[np.ndarray]], transform: Mapping[str, Any]) -> Any:
    """One country's polygons in lon/lat degrees, each inside [-180, 180].

    Rings crossing the antimeridian are split there, and features merged into one code (Somalia
    and Somaliland, say) are unioned so that their shared border disappears.
    """
    pieces = []
    for rings in polygons:
        # TopoJSON quantization can collapse a tiny islet or lake to < 4 points: nothing is left.
        degrees = [to_degrees(r, transform) for r in rings if len(r) >= 4]
        if len(rings[0]) < 4:
            continue
        if all(np.abs(np.diff(d[:, 0])).max(initial=0.0) <= 180.0 for d in degrees):
            pieces.append(shapely.make_valid(Polygon(degrees[0], degrees[1:])))
        else:
            pieces.append(split_antimeridian(degrees))
    return shapely.unary_union(pieces)


def encode_geometry(geometry: Any, transform: Mapping[str, Any]) -> list[list[list[int]]]:
    """Encoded polygons on the grid. Split and intersection points are re-quantized (<= half a
    step, inside the measured error since it is measured on the decoded result); every other
    vertex is a grid point and survives exactly. Re-quantizing can fold a tiny part over itself:
    then the decoded geometry is repaired and encoded again."""
    for _ in range(3):
        encoded: list[list[list[int]]] = []
        for part in polygon_parts(geometry):
            exterior = quantize(np.asarray(part.exterior.coords), transform)
            holes = [quantize(np.asarray(h.coords), transform) for h in part.interiors]
            encoded.append([encode_ring(exterior)] + [encode_ring(h) for h in holes])
        decoded = decoded_geometry(encoded, transform)
        if decoded.is_valid:
            return encoded
        geometry = shapely.make_valid(decoded)
    raise SystemExit("a country stays invalid on the quantization grid")


def decoded_geometry(encoded: list[list[list[int]]], transform: Mapping[str, Any]) -> Any:
    parts = []
    for rings in encoded:
        coords = [
            to_degrees(np.cumsum(np.asarray(r, dtype=np.int64).reshape(-1, 2), axis=0), transform)
            for r in rings
        ]
        parts.append(Polygon(coords[0], coords[1:]))
    return MultiPolygon(parts) if len(parts) != 1 else parts[0]


def build(tarball: bytes) -> dict[str, Any]:
    coarse_topo = read_member(tarball, MEMBER_50M)
    fine_topo = read_member(tarball, MEMBER_10M)
    transform = coarse_topo["transform"]
    coarse = country_rings(coarse_topo)
    fine = country_rings(fine_topo, skip_unknown=True)
    countries: dict[str, Any] = {}
    offsets_km: dict[str, float] = {}
    for code in sorted(coarse):
        geometry = merged_country(coarse[code], transform)
        if code in fine:
            collapsed = collapsed_rings(fine[code], fine_topo["transform"])
            boxes = [on_grid(Polygon(np.vstack((r, r, r, r))), transform) for r in collapsed]
            reference = shapely.unary_union(
                [shapely_country(fine[code], fine_topo["transform"]), *boxes]
            )
            geometry = reconcile_parts(geometry, reference, transform)
        encoded = encode_geometry(geometry, transform)
        shipped = decoded_geometry(encoded, transform)
        # (Antarctica's pole vertices land 0.0007 deg below -90 on the grid; the loader clips.)
        if not shipped.is_valid or shipped.bounds[0] < -180.0 or shipped.bounds[2] > 180.0:
            raise SystemExit(f"{code}: shipped geometry invalid or outside [-180, 180]")
        if code in fine:
            # The drawn 1:10m rings (cut at the antimeridian like the shipped ones) and the
            # collapsed ones as they are: a line or a point, but border all the same.
            rings = border_rings(shapely_country(fine[code], fine_topo["transform"]))
            offsets_km[code] = border_distance_km(shipped, rings + collapsed)
        record = pycountry.countries.get(alpha_3=code)
        name = _EXTRA_NAMES.get(code) or (str(record.name) if record is not None else code)
        countries[code] = {"name": name, "error_km": offsets_km.get(code), "polygons": encoded}
    worst_code = max(offsets_km, key=offsets_km.__getitem__)
    worst_km = offsets_km[worst_code]
    ranked = sorted(offsets_km.items(), key=lambda kv: -kv[1])
    print("largest shipped vs 1:10m border distances (km):", ranked[:8], file=sys.stderr)
    print(f"median {np.median(list(offsets_km.values())):.1f} km", file=sys.stderr)
    # The 1:10m reference is itself on a grid: half a step is part of its own error.
    allowance_km = REFERENCE_ALLOWANCE_KM + 0.5 * math.hypot(*fine_topo["transform"]["scale"]) * (
        math.pi / 180.0 * EARTH_RADIUS_KM
    )
    missing = sorted(code for code, record in countries.items() if record["error_km"] is None)
    for record in countries.values():
        offset_km = record["error_km"] if record["error_km"] is not None else worst_km
        record["error_km"] = math.ceil((offset_km + allowance_km) * 10.0) / 10.0
    print(
        f"{len(countries)} countries; worst {worst_km:.1f} km ({worst_code}); allowance "
        f"{allowance_km:.2f} km; without a 1:10m drawing (given the worst): {missing}",
        file=sys.stderr,
    )
    return {
        "format": 1,
        "source": (
            f"{PACKAGE} countries-50m.json (Natural Earth 4.1.0 admin-0, 1:50m), parts "
            "reconciled with countries-10m.json (1:10m)"
        ),
        "transform": {"scale": transform["scale"], "translate": transform["translate"]},
        "boundary_error_km": math.ceil((worst_km + allowance_km) * 10.0) / 10.0,
        "countries": countries,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tarball", type=Path, help="local world-atlas-2.0.2.tgz (else npm pack)")
    parser.add_argument(
        "--out",
        type=Path,
        default=Path(__file__).resolve().parent.parent / "geo" / "data" / "countries.json.gz",
    )
    args = parser.parse_args(argv)
    data = build(fetch_tarball(args.tarball))
    payload = json.dumps(data, separators=(",", ":"), sort_keys=True).encode()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    # mtime=0 keeps the gzip bytes identical across runs.
    args.out.write_bytes(gzip.compress(payload, compresslevel=9, mtime=0))
    print(f"wrote {args.out} ({args.out.stat().st_size} bytes)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
