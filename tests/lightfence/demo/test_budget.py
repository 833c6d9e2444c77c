"""The proof budget: the room a licence leaves the speed of light at a chip's declared site."""

import pytest

from lightfence.demo.budget import proof_budget

SINGAPORE_DC = {"lat_deg": 1.30, "lon_deg": 103.79}
DUBAI_DC = {"lat_deg": 25.10, "lon_deg": 55.20}


def _licence(allowed: list[str], site: dict[str, float]) -> dict[str, object]:
    return {"allowed": allowed, "prohibited": [], "tolerance_km": 0.0, "site": site}


def test_indonesia_inside_the_margin_leaves_singapore_no_rtt_at_all() -> None:
    budget = proof_budget(_licence(["SGP", "MYS"], SINGAPORE_DC))
    assert budget is not None and budget.nearest_country == "IDN"
    assert budget.foreign_land_km < budget.margin_km
    assert budget.max_colocated_rtt_ms is None


def test_allowing_the_neighbour_gives_the_room_back() -> None:
    budget = proof_budget(_licence(["SGP", "MYS", "IDN"], SINGAPORE_DC))
    assert budget is None or budget.max_colocated_rtt_ms is not None


def test_dubai_leaves_a_third_of_a_millisecond() -> None:
    budget = proof_budget(_licence(["ARE", "OMN", "SAU"], DUBAI_DC))
    assert budget is not None and budget.nearest_country == "IRN"
    # Radius budget r km is a round trip of 2 r / c.
    rtt_ms = budget.max_colocated_rtt_ms
    assert rtt_ms == pytest.approx(2 * budget.max_radius_km / 299_792.458 * 1000)
    assert rtt_ms is not None and 0.2 < rtt_ms < 0.5
    assert budget.to_json()["nearest_foreign_country"] == "IRN"


def test_no_site_no_budget() -> None:
    assert proof_budget({"allowed": ["DEU"], "prohibited": []}) is None
