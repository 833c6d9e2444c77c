"""Licences: where a chip may (allowed) and may not (prohibited) be, with a border tolerance."""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import shapely
from shapely.geometry import mapping
from shapely.geometry.base import BaseGeometry

from geo.errors import InvalidLicenceError
from geo.regions import Region, country, country_codes, region_from_geojson
from geo.sea import ForeignLand, foreign_land

_KEYS = frozenset({"allowed", "prohibited", "tolerance_km", "sea", "site"})
_SITE_KEYS = frozenset({"lat_deg", "lon_deg"})


@dataclass(frozen=True, slots=True)
class DeclaredSite:
    """The data centre a chip is licensed at (optional). Verdicts ignore it; the verifier's
    location alerts compare each round with it (docs/verifier.md, "Location alerts")."""

    lat_deg: float
    lon_deg: float

    def __post_init__(self) -> None:
        bounds = (("lat_deg", self.lat_deg, 90.0), ("lon_deg", self.lon_deg, 180.0))
        for name, value, limit in bounds:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidLicenceError(f"licence.site.{name} must be a number")
            if not (math.isfinite(value) and -limit <= value <= limit):
                raise InvalidLicenceError(
                    f"licence.site.{name} must be finite and within [-{limit:g}, {limit:g}], "
                    f"got {value}"
                )

    def to_json(self) -> dict[str, float]:
        return {"lat_deg": float(self.lat_deg), "lon_deg": float(self.lon_deg)}


class Sea(StrEnum):
    """How a licence treats the sea around its countries (docs/geo.md, "Verdicts").

    NEUTRAL (the default): the sea is no country; `verified` needs the grown sound region to
    touch the allowed regions and keep clear of all other land (plus its territorial sea).
    EXCLUDED (strict): the grown sound region must lie inside the allowed regions, so any sea
    it reaches counts against the chip.
    """

    NEUTRAL = "neutral"
    EXCLUDED = "excluded"


def _union(regions: Sequence[Region]) -> BaseGeometry | None:
    if not regions:
        return None
    if all(r.name in country_codes() and country(r.name) == r for r in regions):
        # A fleet shares a few licences, and the verifier parses one per round: the union of
        # twelve countries cost it a third of its CPU in the demo. Shared, as it is immutable.
        return _union_of_countries(frozenset(r.name for r in regions))
    return _built_union(regions)


@functools.lru_cache(maxsize=256)
def _union_of_countries(codes: frozenset[str]) -> BaseGeometry:
    return _built_union([country(code) for code in sorted(codes)])


def _built_union(regions: Sequence[Region]) -> BaseGeometry:
    union = shapely.union_all([r.geometry for r in regions])
    shapely.prepare(union)
    return union


@dataclass(frozen=True, slots=True)
class Licence:
    """Allowed and/or prohibited regions and a border tolerance in km.

    With no allowed region, everywhere outside the prohibited regions is allowed. The
    tolerance widens the undecided band on both sides of every border (see docs/geo.md).
    """

    allowed: tuple[Region, ...]
    prohibited: tuple[Region, ...]
    tolerance_km: float = 0.0
    sea: Sea = Sea.NEUTRAL
    site: DeclaredSite | None = None
    allowed_union: BaseGeometry | None = field(init=False, repr=False, compare=False)
    prohibited_union: BaseGeometry | None = field(init=False, repr=False, compare=False)
    # Sea-neutral licences with allowed regions: the land the grown region must keep clear of.
    foreign: ForeignLand | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.allowed and not self.prohibited:
            raise InvalidLicenceError("a licence needs at least one allowed or prohibited region")
        for region in (*self.allowed, *self.prohibited):
            if not isinstance(region, Region):
                raise InvalidLicenceError(f"licence regions must be Region values, got {region!r}")
        tolerance = self.tolerance_km
        if isinstance(tolerance, bool) or not isinstance(tolerance, int | float):
            raise InvalidLicenceError("tolerance_km must be a number")
        if not (math.isfinite(tolerance) and tolerance >= 0.0):
            raise InvalidLicenceError(f"tolerance_km must be finite and >= 0, got {tolerance}")
        if self.site is not None and not isinstance(self.site, DeclaredSite):
            raise InvalidLicenceError(f"site must be a DeclaredSite, got {self.site!r}")
        if not isinstance(self.sea, Sea):
            raise InvalidLicenceError(f"sea must be a Sea value, got {self.sea!r}")
        object.__setattr__(self, "allowed_union", _union(self.allowed))
        object.__setattr__(self, "prohibited_union", _union(self.prohibited))
        neutral = self.sea is Sea.NEUTRAL and bool(self.allowed)
        object.__setattr__(self, "foreign", foreign_land(self.allowed) if neutral else None)

    @property
    def margin_km(self) -> float:
        """Distance the sound region is grown by before comparing it with the regions: the
        tolerance plus the worst drawing error of any region in the licence."""
        errors = [r.boundary_error_km for r in (*self.allowed, *self.prohibited)]
        return float(self.tolerance_km) + max(errors, default=0.0)

    def to_json(self) -> dict[str, Any]:
        """Inverse of `licence_from_json`: countries as alpha-3 codes, others as GeoJSON."""
        return {
            "allowed": [_region_to_json(r) for r in self.allowed],
            "prohibited": [_region_to_json(r) for r in self.prohibited],
            "tolerance_km": self.tolerance_km,
            "sea": self.sea.value,
            **({"site": self.site.to_json()} if self.site is not None else {}),
        }


def _region_to_json(region: Region) -> str | dict[str, Any]:
    if region.name in country_codes() and country(region.name) == region:
        return region.name
    geometry: dict[str, Any] = mapping(region.geometry)
    return {"type": "Feature", "properties": {"name": region.name}, "geometry": geometry}


def _region_from_json(item: object, where: str) -> Region:
    if isinstance(item, str):
        return country(item)
    if isinstance(item, Mapping):
        return region_from_geojson(item)
    raise InvalidLicenceError(f"{where}: expected an ISO alpha-3 code or a GeoJSON object")


def licence_from_json(obj: Mapping[str, Any]) -> Licence:
    """Parse {"allowed": [iso3|GeoJSON], "prohibited": [...], "tolerance_km": 0,
    "sea": "neutral" | "excluded", "site": {"lat_deg", "lon_deg"}} ("sea" defaults to
    "neutral"; "site", the declared data centre, is optional)."""
    if not isinstance(obj, Mapping):
        raise InvalidLicenceError("licence must be a JSON object")
    unknown = set(obj) - _KEYS
    if unknown:
        raise InvalidLicenceError(f"licence has unknown keys: {', '.join(sorted(unknown))}")
    regions: dict[str, tuple[Region, ...]] = {}
    for key in ("allowed", "prohibited"):
        items = obj.get(key, [])
        if not isinstance(items, list):
            raise InvalidLicenceError(f"licence.{key} must be a list")
        regions[key] = tuple(
            _region_from_json(x, f"licence.{key}[{i}]") for i, x in enumerate(items)
        )
    sea = obj.get("sea", Sea.NEUTRAL.value)
    if not isinstance(sea, str) or sea not in {s.value for s in Sea}:
        raise InvalidLicenceError(
            f"licence.sea must be one of {', '.join(repr(s.value) for s in Sea)}, got {sea!r}"
        )
    return Licence(
        allowed=regions["allowed"],
        prohibited=regions["prohibited"],
        tolerance_km=obj.get("tolerance_km", 0.0),
        sea=Sea(sea),
        site=site_from_json(obj),
    )


def site_from_json(obj: Mapping[str, Any]) -> DeclaredSite | None:
    """The licence's declared site ({"site": {"lat_deg", "lon_deg"}}), or None; reads only
    that key, so callers that need just the site skip parsing the regions."""
    site = obj.get("site")
    if site is None:
        return None
    if not isinstance(site, Mapping) or set(site) != _SITE_KEYS:
        raise InvalidLicenceError('licence.site must be {"lat_deg": number, "lon_deg": number}')
    return DeclaredSite(site["lat_deg"], site["lon_deg"])
