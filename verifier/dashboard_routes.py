"""What the dashboard page needs beyond the REST API: drawable country outlines and the page itself.

The outlines are simplified copies of `geo.regions` boundaries, made for drawing only; verdicts
always use the full geometries in the geo core. They are public-domain data with no fleet
information in them, so the route needs no token (the page loads them before it knows one).
"""

from __future__ import annotations

import functools
import json
import logging
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Response
from fastapi.staticfiles import StaticFiles
from shapely.geometry import mapping

from geo import regions
from geo.assessment import Verdict
from geo.decision import ReasonCode
from verifier.model import AlertType, ChipState
from verifier.schemas import VocabularyOut

logger = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"

# ~0.05° is ~5 km at the equator: invisible at world zoom, keeps the file small enough to load
# instantly on a closed network. Drawing only; never used for a verdict.
DRAWING_TOLERANCE_DEG = 0.05
# Three decimals of a degree is ~110 m, well under the drawing tolerance.
COORDINATE_DECIMALS = 3

router = APIRouter(tags=["dashboard"])


def _round_coordinates(value: Any) -> Any:
    """Rounds every number in nested GeoJSON coordinate lists (tuples become lists)."""
    if isinstance(value, float):
        return round(value, COORDINATE_DECIMALS)
    if isinstance(value, list | tuple):
        return [_round_coordinates(item) for item in value]
    return value


def countries_feature_collection(
    tolerance_deg: float = DRAWING_TOLERANCE_DEG,
) -> dict[str, Any]:
    """Every bundled country as a simplified GeoJSON Feature with `properties.iso3`."""
    features: list[dict[str, Any]] = []
    for iso3 in regions.country_codes():
        geometry = regions.country(iso3).geometry.simplify(tolerance_deg, preserve_topology=True)
        if geometry.is_empty:
            # A tiny island can vanish at drawing tolerance; keep the outline rather than lose it.
            geometry = regions.country(iso3).geometry
        drawn = mapping(geometry)
        features.append(
            {
                "type": "Feature",
                "properties": {"iso3": iso3},
                "geometry": {
                    "type": drawn["type"],
                    "coordinates": _round_coordinates(drawn["coordinates"]),
                },
            }
        )
    return {"type": "FeatureCollection", "features": features}


@functools.cache
def _countries_body() -> bytes:
    body = json.dumps(countries_feature_collection(), separators=(",", ":")).encode()
    logger.info("dashboard country outlines built: %d bytes", len(body))
    return body


@router.get(
    "/v1/map/countries.geojson",
    summary="Simplified country outlines for drawing the dashboard map (not for verdicts)",
    response_class=Response,
    responses={200: {"content": {"application/geo+json": {}}}},
)
def countries_geojson() -> Response:
    return Response(
        content=_countries_body(),
        media_type="application/geo+json",
        headers={"Cache-Control": "public, max-age=86400"},
    )


@router.get(
    "/v1/vocabulary",
    response_model=VocabularyOut,
    summary="The values verdicts, chip states, reason codes and alert types take",
)
def vocabulary() -> VocabularyOut:
    """Served so the dashboard fills its filters from the one definition (no fleet data in it,
    so no token, like the outlines)."""
    return VocabularyOut(
        verdicts=list(Verdict),
        chip_states=list(ChipState),
        reason_codes=list(ReasonCode),
        alert_types=list(AlertType),
    )


def mount_static(app: FastAPI) -> None:
    """Serves the dashboard at `/`. Call after every router so `/v1/...` routes win."""
    app.mount("/", StaticFiles(directory=STATIC_DIR, html=True), name="dashboard")
