"""A licence of bundled countries shares one union per set of countries; nothing else does."""

from geo.licence import licence_from_json

SAHARA_SQUARE = {
    "type": "Feature",
    "properties": {"name": "DEU"},  # a custom region may carry a country's name
    "geometry": {"type": "Polygon",
                 "coordinates": [[[10.0, 20.0], [11.0, 20.0], [11.0, 21.0], [10.0, 21.0],
                                  [10.0, 20.0]]]},
}


def test_the_same_countries_in_any_order_share_one_union() -> None:
    first = licence_from_json({"allowed": ["DEU", "FRA"]})
    second = licence_from_json({"allowed": ["FRA", "DEU"], "tolerance_km": 5.0})
    assert first.allowed_union is not None
    assert first.allowed_union is second.allowed_union
    assert licence_from_json({"allowed": ["DEU"]}).allowed_union is not first.allowed_union


def test_a_custom_region_named_like_a_country_is_not_mistaken_for_it() -> None:
    custom = licence_from_json({"allowed": [SAHARA_SQUARE]})
    germany = licence_from_json({"allowed": ["DEU"]})
    assert custom.allowed_union is not None and germany.allowed_union is not None
    assert custom.allowed_union.area < 1.1  # the 1°x1° square, not Germany (~45 square degrees)
    assert custom.allowed_union is not germany.allowed_union
