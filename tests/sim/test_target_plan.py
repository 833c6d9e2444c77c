"""`bench plan --target-share`: the fewest landmarks (metro or co-located) for a verified share
at each f, checked on held-out chips; and the fast path's declared-site witness it relies on."""

import json

import numpy as np
import pytest

from geo.regions import country
from sim.cli import main
from sim.errors import ScenarioError
from sim.fastpath import (
    CountryCells,
    FastParams,
    FastVerdict,
    LandmarkField,
    build_grid,
    classify_cells,
    fast_verdict,
    land_touches,
)
from sim.sites import Site
from sim.target_plan import COLOCATED_RTT_MS, TargetRequest, plan_to_target

# Two licensed countries with one data centre each, and metro candidates around them.
SITES = (
    Site("Madrid", "ESP", 40.42, -3.70, "city", "test"),
    Site("Warsaw", "POL", 52.23, 21.01, "city", "test"),
    Site("Lisbon", "PRT", 38.72, -9.14, "city", "test"),
    Site("Berlin", "DEU", 52.52, 13.40, "city", "test"),
    Site("Vilnius", "LTU", 54.69, 25.28, "city", "test"),
)
MARGIN_KM = 11.0
GRID = build_grid(100.0)


def small_request(**kw: object) -> TargetRequest:
    base: dict[str, object] = dict(
        countries=("ESP", "POL"),
        target_share=0.9,
        faults=(0, 1),
        max_landmarks=6,
        chips_per_country=4,
        holdout_chips_per_country=10,
        candidate_radius_km=1200.0,
        grid_km=100.0,
    )
    base.update(kw)
    return TargetRequest(**base)  # type: ignore[arg-type]


def test_target_plan_reaches_the_share_with_colocated_landmarks_at_each_f() -> None:
    plans = plan_to_target(small_request(), SITES)
    assert [p.faults for p in plans] == [0, 1]
    for p in plans:
        assert p.reached and p.choice_share >= 0.9
        assert p.holdout_chips == 20
        assert p.holdout_share >= 0.9
        # Madrid and Warsaw each need a landmark in their own data centre.
        colocated = [c.site.name for c in p.landmarks if c.colocated]
        assert {"Madrid", "Warsaw"} <= set(colocated)
    f0, f1 = plans
    assert len(f0.landmarks) == 2  # one per campus suffices when no landmark lies
    # With one liar tolerated, one landmark per campus proves nothing: two per campus.
    assert len(f1.landmarks) == 4
    assert sorted(c.site.name for c in f1.landmarks if c.colocated) == [
        "Madrid", "Madrid", "Warsaw", "Warsaw"
    ]
    out = f1.to_json()
    assert out["landmarks"] == 4 and out["colocated"] == 4
    assert out["sites"][0]["colocated"] is True


def test_a_cap_too_small_stops_short_and_says_so() -> None:
    # At f = 1 a cap of three fits one campus's pair and leaves the other campus unproven.
    plans = plan_to_target(small_request(faults=(1,), max_landmarks=3), SITES)
    (p,) = plans
    assert len(p.landmarks) == 2
    assert not p.reached and not p.stalled
    assert p.choice_share < 0.9
    assert p.to_json()["reached_target"] is False


def test_a_site_geo_cannot_prove_stalls_the_plan_and_shows_per_country() -> None:
    # All of Singapore lies within Malaysia's land grown by 12 nmi and its border error: no
    # landmark can prove a chip there, so the planner stops once more picks verify nothing.
    singapore = Site("Singapore", "SGP", 1.35, 103.82, "city", "test")
    request = small_request(countries=("ESP", "SGP"), faults=(0,), max_landmarks=12)
    (p,) = plan_to_target(request, (*SITES, singapore))
    assert not p.reached and p.stalled
    # Madrid's campus and a second landmark (geo judges two or more); the picks after them
    # verified nothing and are left out of the plan.
    assert len(p.landmarks) == 2
    assert p.holdout_by_country == {"ESP": 1.0, "SGP": 0.0}
    assert p.to_json()["stalled"] is True


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"holdout_seed": 0}, "holdout_seed must differ"),
        ({"target_share": 1.5}, "target share"),
        ({"faults": (-1,)}, "faults"),
        ({"faults": (3,), "max_landmarks": 4}, "max_landmarks"),
        ({"countries": ()}, "at least one"),
        ({"colocated_rtt_ms": -0.1}, "colocated_rtt_ms"),
    ],
)
def test_rejected_requests(change: dict[str, object], message: str) -> None:
    with pytest.raises(ScenarioError, match=message):
        small_request(**change)


def test_a_country_without_chip_sites_is_refused() -> None:
    with pytest.raises(ScenarioError, match="no chip site in ATA"):
        plan_to_target(small_request(countries=("ESP", "ATA")), SITES)


def test_cli_target_mode_prints_one_plan_per_f(capsys: pytest.CaptureFixture[str], tmp_path):
    csv = tmp_path / "sites.csv"
    csv.write_text(
        "name,iso3,lat_deg,lon_deg,kind,source\n"
        + "".join(f"{s.name},{s.iso3},{s.lat_deg},{s.lon_deg},city,test\n" for s in SITES)
    )
    argv = ["plan", "--countries", "ESP,POL", "--target-share", "0.9", "--faults", "0,1",
            "--chips-per-country", "4", "--holdout-chips-per-country", "10",
            "--candidate-radius-km", "1200", "--grid-km", "100", "--max-landmarks", "6",
            "--sites", str(csv)]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert [p["faults"] for p in out["plans"]] == [0, 1]
    assert [p["landmarks"] for p in out["plans"]] == [2, 4]
    assert out["plans"][1]["holdout_verified_share_by_country"] == {"ESP": 1.0, "POL": 1.0}
    limits = {row["metro"]: row for row in out["site_limits"]}
    assert set(limits) == {"Madrid", "Warsaw"}
    assert all(row["provable_at_planned_rtt"] for row in limits.values())
    assert out["colocated_rtt_ms"] == COLOCATED_RTT_MS
    assert main([*argv[:-2], "--faults", "0,x"]) == 2
    assert "--faults expects integers" in capsys.readouterr().err


def _madrid_and_far(code: str) -> tuple[LandmarkField, CountryCells, np.ndarray]:
    """A landmark in Madrid's data centre and one in Lisbon (geo judges two landmarks or
    more); the chip answers the first over its cross-connect."""
    land = land_touches(GRID, MARGIN_KM)
    madrid, lisbon = SITES[0], SITES[2]
    field = LandmarkField(
        GRID, np.array([madrid.lat_deg, lisbon.lat_deg]), np.array([madrid.lon_deg, lisbon.lon_deg])
    )
    cells = classify_cells(GRID, country(code), MARGIN_KM, land)
    return field, cells, np.array([COLOCATED_RTT_MS, 8.0])


def test_declared_site_witness_proves_a_region_smaller_than_a_cell() -> None:
    field, cells, rtt = _madrid_and_far("ESP")
    params = FastParams(margin_km=MARGIN_KM, robust_landmarks=0)
    # No cell centre lies within the cap's 15 km, but the co-located landmark's own position
    # does (and lies in Spain): the disc route proves it without a declared site too.
    assert fast_verdict(field, params, cells, rtt).verdict == FastVerdict.VERIFIED
    at_site = fast_verdict(field, params, cells, rtt, np.array([0.0, 500.0]))
    assert at_site.verdict == FastVerdict.VERIFIED
    # One landmark alone: geo gives no verdict, nor does the fast path.
    alone = fast_verdict(field, params, cells, np.array([COLOCATED_RTT_MS, np.nan]))
    assert alone.verdict == FastVerdict.INCONCLUSIVE


def test_declared_site_witness_cannot_verify_a_region_over_foreign_land() -> None:
    # A cap around Madrid judged against a Portuguese licence: the hint proves the region is
    # not empty, never that it lies in Portugal.
    field, cells, rtt = _madrid_and_far("PRT")
    params = FastParams(margin_km=MARGIN_KM, robust_landmarks=0)
    outcome = fast_verdict(field, params, cells, rtt, np.array([0.0, 500.0]))
    assert outcome.verdict != FastVerdict.VERIFIED
