import io

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.constants import C_VACUUM_KM_PER_S
from sim.errors import ScenarioError, SiteFileError
from sim.latency import LatencyModel
from sim.sites import SITE_KINDS, load_sites, read_sites_csv


def test_defaults_match_published_inflation():
    ratios = LatencyModel().vacuum_ratio_quantiles((0.05, 0.5))
    assert ratios["p50"] == pytest.approx(3.0, abs=0.05)
    assert ratios["p05"] == pytest.approx(2.0, abs=0.05)


@settings(max_examples=50, deadline=None)
@given(
    distance_km=st.floats(0.0, 20_000.0),
    seed=st.integers(0, 2**32 - 1),
    loss=st.floats(0.0, 0.9),
)
def test_no_rtt_beats_light(distance_km, seed, loss):
    model = LatencyModel(loss_rate=loss)
    rng = np.random.default_rng(seed)
    rtt = model.rtt_ms(rng, np.full((4, 8), distance_km), np.zeros((4, 1)))
    vacuum_ms = 2.0 * distance_km / C_VACUUM_KM_PER_S * 1000.0
    assert np.all(np.isnan(rtt) | (rtt >= vacuum_ms))


def test_same_seed_same_rtts():
    model = LatencyModel()
    distance = np.linspace(10.0, 9000.0, 40).reshape(4, 10)
    a = model.rtt_ms(np.random.default_rng(7), distance, np.zeros((4, 1)))
    b = model.rtt_ms(np.random.default_rng(7), distance, np.zeros((4, 1)))
    np.testing.assert_array_equal(a, b)


def test_latency_rejects_bad_parameters():
    with pytest.raises(ScenarioError, match="nothing beats light"):
        LatencyModel(fibre_speed_km_per_s=C_VACUUM_KM_PER_S * 1.1)
    with pytest.raises(ScenarioError, match="loss_rate"):
        LatencyModel(loss_rate=1.0)
    with pytest.raises(ScenarioError, match="unknown latency parameter 'speed'"):
        LatencyModel.with_overrides({"speed": "1"})
    with pytest.raises(ScenarioError, match="not a number"):
        LatencyModel.with_overrides({"loss_rate": "lots"})
    assert LatencyModel.with_overrides({"loss_rate": "0.2"}).loss_rate == 0.2


def test_bundled_sites_are_real_places():
    sites = load_sites()
    assert len(sites) >= 300
    assert {s.kind for s in sites} == set(SITE_KINDS)
    assert len({s.iso3 for s in sites}) >= 100
    assert all(-90 <= s.lat_deg <= 90 and -180 <= s.lon_deg <= 180 for s in sites)
    tokyo = next(s for s in sites if s.name == "Tokyo")
    assert (tokyo.iso3, round(tokyo.lat_deg), round(tokyo.lon_deg)) == ("JPN", 36, 140)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("name,iso3,lat_deg,kind\nA,DEU,1,city\n", "missing column"),
        ("name,iso3,lat_deg,lon_deg,kind\nA,DEU,91,0,city\n", "line 2: lat_deg 91.0 outside"),
        ("name,iso3,lat_deg,lon_deg,kind\nA,DE,1,0,city\n", "alpha-3"),
        ("name,iso3,lat_deg,lon_deg,kind\nA,DEU,x,0,city\n", "must be numbers"),
        ("name,iso3,lat_deg,lon_deg,kind\nA,DEU,1,0,castle\n", "kind 'castle'"),
        ("name,iso3,lat_deg,lon_deg,kind\n", "no sites"),
    ],
)
def test_bad_site_files_are_rejected_clearly(text, message):
    with pytest.raises(SiteFileError, match=message):
        read_sites_csv(io.StringIO(text), "test.csv")


def test_missing_site_file(tmp_path):
    with pytest.raises(SiteFileError, match="cannot read"):
        load_sites(tmp_path / "absent.csv")


def test_planner_reports_marginal_gains_and_rejects_unknown_places():
    from sim.planning import PlanRequest, plan

    request = PlanRequest(
        countries=("USA",), k=4, chips_per_country=6, candidate_radius_km=1500.0, grid_km=250.0
    )
    steps = plan(request, load_sites())
    assert len(steps) == 4
    assert len({s.site.name for s in steps}) == 4
    rates = [s.verified_rate for s in steps]
    assert rates[0] == 0.0  # one landmark can never give a verdict robust to one liar
    assert all(
        s.gain == pytest.approx(r - p) for s, r, p in zip(steps, rates, [0.0, *rates], strict=False)
    )
    # each added landmark shrinks (or keeps) the sound regions
    areas = [s.mean_log10_area_km2 for s in steps]
    assert areas[-1] < areas[0]
    with pytest.raises(ScenarioError, match="no chip site in ATA"):
        plan(PlanRequest(countries=("ATA",), k=3), load_sites())
