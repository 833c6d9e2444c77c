"""The optional declared site of a licence: parsed strictly, kept in JSON, ignored by verdicts."""

import math

import pytest

from geo.assess import assess
from geo.errors import InvalidLicenceError
from geo.licence import DeclaredSite, licence_from_json, site_from_json
from geo.measurement import LandmarkRtt

SITE = {"lat_deg": 50.10, "lon_deg": 8.63}


def test_site_round_trips_and_is_absent_by_default() -> None:
    licence = licence_from_json({"allowed": ["DEU"], "site": SITE})
    assert licence.site == DeclaredSite(50.10, 8.63)
    assert licence.to_json()["site"] == SITE
    assert licence_from_json(licence.to_json()) == licence
    assert "site" not in licence_from_json({"allowed": ["DEU"]}).to_json()
    assert site_from_json({"allowed": ["XYZ-not-parsed"], "site": SITE}) == DeclaredSite(50.1, 8.63)


@pytest.mark.parametrize(
    ("site", "message"),
    [
        ({"lat_deg": 95.0, "lon_deg": 0.0}, r"lat_deg must be finite and within \[-90, 90\]"),
        ({"lat_deg": 0.0, "lon_deg": -181.0}, r"lon_deg must be finite and within \[-180, 180\]"),
        ({"lat_deg": math.nan, "lon_deg": 0.0}, "lat_deg must be finite"),
        ({"lat_deg": "50", "lon_deg": 8.0}, "lat_deg must be a number"),
        ({"lat_deg": True, "lon_deg": 8.0}, "lat_deg must be a number"),
        ({"lat": 50.0, "lon": 8.0}, "licence.site must be"),
        ([50.0, 8.0], "licence.site must be"),
    ],
)
def test_a_bad_site_is_refused_clearly(site, message) -> None:
    with pytest.raises(InvalidLicenceError, match=message):
        licence_from_json({"allowed": ["DEU"], "site": site})


def test_the_site_does_not_change_the_verdict() -> None:
    rtts = [
        LandmarkRtt("fra", 50.11, 8.68, 0.6),
        LandmarkRtt("ber", 52.52, 13.40, 4.5),
        LandmarkRtt("par", 48.86, 2.35, 5.0),
    ]
    far_site = {"lat_deg": 40.0, "lon_deg": -3.0}  # a wrong declaration is an alert, not a verdict
    with_site = assess(rtts, licence_from_json({"allowed": ["DEU"], "site": far_site}))
    without = assess(rtts, licence_from_json({"allowed": ["DEU"]}))
    assert with_site.verdict is without.verdict
