"""The dashboard's own routes: drawable country outlines and the static page."""

from __future__ import annotations

import json

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from shapely.geometry import shape

from geo import regions
from verifier import dashboard_routes


@pytest.fixture(scope="module")
def client() -> TestClient:
    app = FastAPI()

    @app.get("/v1/ping")
    def ping() -> dict[str, str]:
        return {"pong": "yes"}

    app.include_router(dashboard_routes.router)
    dashboard_routes.mount_static(app)
    return TestClient(app)


def test_countries_geojson_has_every_bundled_country_simplified(client: TestClient) -> None:
    response = client.get("/v1/map/countries.geojson")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/geo+json")
    body = json.loads(response.content)
    assert body["type"] == "FeatureCollection"
    codes = [feature["properties"]["iso3"] for feature in body["features"]]
    assert codes == list(regions.country_codes())
    for feature in body["features"]:
        drawn = shape(feature["geometry"])
        assert not drawn.is_empty, feature["properties"]["iso3"]
    # Drawing copies stay close to the real boundary (topology-preserving simplification may
    # move a vertex somewhat past the tolerance to keep rings valid).
    for iso3 in ("FRA", "USA", "JPN", "CHL"):
        feature = next(f for f in body["features"] if f["properties"]["iso3"] == iso3)
        full = regions.country(iso3).geometry
        drawn = shape(feature["geometry"])
        assert drawn.hausdorff_distance(full) <= 2 * dashboard_routes.DRAWING_TOLERANCE_DEG
    # Simplification is the point of the route: far fewer vertices than the full outlines.
    full_vertices = sum(len(json.dumps(regions.country(c).geometry.wkt)) for c in codes)
    assert len(response.content) < full_vertices


def test_static_page_served_at_root_and_api_routes_win(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200
    assert '<script type="module" src="app.js">' in page.text
    for asset, kind in (("app.js", "javascript"), ("map.js", "javascript"), ("style.css", "css")):
        response = client.get(f"/{asset}")
        assert response.status_code == 200, asset
        assert kind in response.headers["content-type"]
    assert client.get("/v1/ping").json() == {"pong": "yes"}


def test_unknown_static_path_is_404_not_the_page(client: TestClient) -> None:
    assert client.get("/no-such-file.js").status_code == 404
