"""The bundled table of real places (cities, cloud regions, exchanges) and loaders for it.

Coordinates are facts; `data/SOURCE.md` says where each row comes from.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np
import numpy.typing as npt

from geo.constants import EARTH_MEAN_RADIUS_KM
from sim.errors import SiteFileError

SITE_KINDS = ("city", "cloud", "ix")
_COLUMNS = ("name", "iso3", "lat_deg", "lon_deg", "kind", "source")


@dataclass(frozen=True, slots=True)
class Site:
    name: str
    iso3: str
    lat_deg: float
    lon_deg: float
    kind: str
    source: str


def _parse_row(row: dict[str, str], where: str) -> Site:
    try:
        lat_deg = float(row["lat_deg"])
        lon_deg = float(row["lon_deg"])
    except (KeyError, TypeError, ValueError) as exc:
        raise SiteFileError(f"{where}: lat_deg/lon_deg must be numbers") from exc
    if not (math.isfinite(lat_deg) and -90.0 <= lat_deg <= 90.0):
        raise SiteFileError(f"{where}: lat_deg {lat_deg} outside [-90, 90]")
    if not (math.isfinite(lon_deg) and -180.0 <= lon_deg <= 180.0):
        raise SiteFileError(f"{where}: lon_deg {lon_deg} outside [-180, 180]")
    iso3 = (row.get("iso3") or "").strip().upper()
    if len(iso3) != 3 or not iso3.isalpha():
        raise SiteFileError(f"{where}: iso3 {iso3!r} is not an ISO 3166 alpha-3 code")
    kind = (row.get("kind") or "").strip()
    if kind not in SITE_KINDS:
        raise SiteFileError(f"{where}: kind {kind!r} not one of {', '.join(SITE_KINDS)}")
    name = (row.get("name") or "").strip()
    if not name:
        raise SiteFileError(f"{where}: empty name")
    return Site(name, iso3, lat_deg, lon_deg, kind, (row.get("source") or "").strip())


def read_sites_csv(lines: Iterable[str], origin: str) -> tuple[Site, ...]:
    """Parse a sites CSV (header `name,iso3,lat_deg,lon_deg,kind,source`)."""
    reader = csv.DictReader(lines)
    missing = [c for c in _COLUMNS[:5] if c not in (reader.fieldnames or ())]
    if missing:
        raise SiteFileError(f"{origin}: missing column(s) {', '.join(missing)}")
    sites = tuple(_parse_row(row, f"{origin} line {index + 2}") for index, row in enumerate(reader))
    if not sites:
        raise SiteFileError(f"{origin}: no sites")
    return sites


def load_sites(path: Path | None = None) -> tuple[Site, ...]:
    """The bundled table, or a user CSV of the same shape."""
    if path is None:
        text = resources.files("sim").joinpath("data/sites.csv").read_text("utf-8")
        return read_sites_csv(text.splitlines(), "bundled sites.csv")
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            return read_sites_csv(handle, str(path))
    except OSError as exc:
        raise SiteFileError(f"cannot read {path}: {exc.strerror}") from exc


def unique_places(sites: Sequence[Site]) -> tuple[Site, ...]:
    """Drop rows at the same coordinates (a cloud region in a city already listed)."""
    seen: set[tuple[float, float]] = set()
    kept: list[Site] = []
    for site in sites:
        key = (round(site.lat_deg, 2), round(site.lon_deg, 2))
        if key not in seen:
            seen.add(key)
            kept.append(site)
    return tuple(kept)


FloatArray = npt.NDArray[np.float64]


def pairwise_km(a_xyz: FloatArray, b_xyz: FloatArray) -> FloatArray:
    """Spherical (radius R1) distances between every row of `a_xyz` and every row of `b_xyz`."""
    dot = np.clip(a_xyz @ b_xyz.T, -1.0, 1.0)
    return np.asarray(np.arccos(dot) * EARTH_MEAN_RADIUS_KM, dtype=np.float64)


def offset_points(
    lat_deg: FloatArray, lon_deg: FloatArray, distance_km: FloatArray, bearing_rad: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Destination points on the sphere (used to scatter chips around a site)."""
    lat1 = np.radians(lat_deg)
    lon1 = np.radians(lon_deg)
    angular = distance_km / EARTH_MEAN_RADIUS_KM
    lat2 = np.arcsin(
        np.sin(lat1) * np.cos(angular) + np.cos(lat1) * np.sin(angular) * np.cos(bearing_rad)
    )
    lon2 = lon1 + np.arctan2(
        np.sin(bearing_rad) * np.sin(angular) * np.cos(lat1),
        np.cos(angular) - np.sin(lat1) * np.sin(lat2),
    )
    lon2_deg = (np.degrees(lon2) + 540.0) % 360.0 - 180.0
    return np.degrees(lat2), lon2_deg
