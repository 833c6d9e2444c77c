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

Each country also records `error_km`: how far its 1:50m border lies at most from the same
country's 1:10m border (measured here against `countries-10m.json` from the same tarball, parts of
>= 2,000 km² only, densified search: an upper bound) plus half a quantization step; the file's
`boundary_error_km` is the worst of them. Consumers buffer by it.
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
# Parts of a 1:10m country smaller than this (km², roughly) are islets the 1:50m data may drop;
# they are reported separately rather than folded into the error bound.
MAINLAND_MIN_AREA_KM2 = 2_000.0

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


def shapely_country(polygons: list[list[np.ndarray]], transform: Mapping[str, Any]) -> Any:
    return decoded_geometry(split_country(polygons, transform), transform)


def unit_vectors(lon_lat_deg: np.ndarray) -> np.ndarray:
    lon = np.radians(lon_lat_deg[:, 0])
    lat = np.radians(lon_lat_deg[:, 1])
    return np.column_stack((np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)))


def approx_area_km2(polygon: Polygon) -> float:
    lat = math.radians(polygon.centroid.y)
    return float(polygon.area) * (111.32**2) * max(math.cos(lat), 0.01)


def polygon_parts(geometry: Any) -> list[Polygon]:
    parts: list[Polygon] = []
    for part in shapely.get_parts(geometry):
        if isinstance(part, Polygon):
            parts.append(part)
        elif part.geom_type in ("MultiPolygon", "GeometryCollection"):
            parts.extend(polygon_parts(part))
    return parts


def generalisation_error_km(coarse: Any, fine: Any) -> tuple[float, int]:
    """Max distance from the fine (1:10m) mainland border vertices to the coarse border, km.

    The coarse boundary is densified to <= 0.01 deg (~1.1 km) and searched as 3-D unit vectors, so
    the figure is an upper bound of the true point-to-line distance by at most ~0.6 km. Returns
    the bound and the number of fine parts skipped as islets.
    """
    coarse_lines = shapely.segmentize(coarse.boundary, 0.01)
    coarse_xy = shapely.get_coordinates(coarse_lines)
    tree = cKDTree(unit_vectors(coarse_xy))
    fine_parts = polygon_parts(fine)
    mainland = [p for p in fine_parts if approx_area_km2(p) >= MAINLAND_MIN_AREA_KM2]
    if not mainland:
        return 0.0, len(fine_parts)
    fine_xy = shapely.get_coordinates(MultiPolygon(mainland).boundary)
    chord, _ = tree.query(unit_vectors(fine_xy))
    arc_km = 2.0 * np.arcsin(np.clip(np.asarray(chord) / 2.0, 0.0, 1.0)) * EARTH_RADIUS_KM
    return float(arc_km.max()), len(fine_parts) - len(mainland)


def quantize(lon_lat_deg: np.ndarray, transform: Mapping[str, Any]) -> np.ndarray:
    scale = np.asarray(transform["scale"], dtype=np.float64)
    translate = np.asarray(transform["translate"], dtype=np.float64)
    return np.rint((lon_lat_deg - translate) / scale).astype(np.int64)


def encode_ring(ring: np.ndarray) -> list[int]:
    """Flat delta-encoded x, y list of a closed ring (first point repeated last)."""
    closed = ring if np.array_equal(ring[0], ring[-1]) else np.vstack((ring, ring[:1]))
    deltas = np.diff(closed, axis=0, prepend=np.zeros((1, 2), dtype=np.int64))
    return [int(v) for v in deltas.reshape(-1)]


def split_country(
    polygons: list[list[np.ndarray]], transform: Mapping[str, Any]
) -> list[list[list[int]]]:
    """Encoded polygons of one country, each inside [-180, 180].

    Rings crossing the antimeridian are split there, and features merged into one code (Somalia
    and Somaliland, say) are unioned so that their shared border disappears. Split points'
    latitudes are re-quantized onto the same grid (error <= half a step, which the boundary error
    bound already includes); every other vertex is a grid point and survives exactly.
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
    merged = shapely.unary_union(pieces)
    encoded: list[list[list[int]]] = []
    for part in polygon_parts(merged):
        exterior = quantize(np.asarray(part.exterior.coords), transform)
        holes = [quantize(np.asarray(h.coords), transform) for h in part.interiors]
        encoded.append([encode_ring(exterior)] + [encode_ring(h) for h in holes])
    return encoded


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
    errors_km: dict[str, float] = {}
    islets = 0
    for code in sorted(coarse):
        encoded = split_country(coarse[code], transform)
        shipped = decoded_geometry(encoded, transform)
        # (Antarctica's pole vertices land 0.0007 deg below -90 on the grid; the loader clips.)
        if not shipped.is_valid or shipped.bounds[0] < -180.0 or shipped.bounds[2] > 180.0:
            raise SystemExit(f"{code}: shipped geometry invalid or outside [-180, 180]")
        if code in fine:
            error_km, skipped = generalisation_error_km(
                shapely_country(coarse[code], transform),
                shapely_country(fine[code], fine_topo["transform"]),
            )
            islets += skipped
            errors_km[code] = error_km
        record = pycountry.countries.get(alpha_3=code)
        name = _EXTRA_NAMES.get(code) or (str(record.name) if record is not None else code)
        countries[code] = {
            "name": name,
            "error_km": errors_km.get(code),
            "polygons": encoded,
        }
    worst_code = max(errors_km, key=errors_km.__getitem__)
    worst_km = errors_km[worst_code]
    ranked = sorted(errors_km.items(), key=lambda kv: -kv[1])
    print("largest 1:50m vs 1:10m border offsets (km):", ranked[:8], file=sys.stderr)
    print(f"median country offset {np.median(list(errors_km.values())):.1f} km", file=sys.stderr)
    quant_km = 0.5 * math.hypot(*transform["scale"]) * 111.32
    for record in countries.values():
        # A country missing from 1:10m gets the worst bound seen anywhere.
        error_km = record["error_km"] if record["error_km"] is not None else worst_km
        record["error_km"] = math.ceil((error_km + quant_km) * 10.0) / 10.0
    print(
        f"{len(countries)} countries; 1:50m vs 1:10m worst {worst_km:.1f} km ({worst_code}); "
        f"{islets} islets skipped; half quantization step {quant_km:.2f} km",
        file=sys.stderr,
    )
    return {
        "format": 1,
        "source": f"{PACKAGE} countries-50m.json (Natural Earth 4.1.0 admin-0, 1:50m)",
        "transform": {"scale": transform["scale"], "translate": transform["translate"]},
        "boundary_error_km": math.ceil((worst_km + quant_km) * 10.0) / 10.0,
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
