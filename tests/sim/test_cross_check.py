"""Every decisive fast verdict agrees with geo.assess.assess (the fast path is never bolder).

The run's random replay sample rarely holds a fast `verified`; here every decisive fast
verdict of a small population is replayed, so the check bites where it matters.
"""

import numpy as np

from geo.geodesy import unit_vectors
from sim.fastpath import FastVerdict, fast_verdict
from sim.metrics import SampleRecord
from sim.runner import cross_check, summarise_cross_check
from sim.sites import pairwise_km
from sim.world import Scenario, World


def test_decisive_fast_verdicts_are_confirmed_by_assess():
    world = World(
        Scenario(chips=1, landmarks=100, grid_km=150.0, robust_landmarks=0, sample_size=0, seed=5)
    )
    rng = np.random.default_rng(11)
    model = world.scenario.latency
    site = rng.integers(0, len(world.chip_sites), 600)
    licence = world.site_country[site]
    # Half the chips are where their licence says, half at another country's site.
    moved = rng.random(site.size) < 0.5
    place = np.where(moved, [rng.choice(world.destinations[s]) for s in site], site)
    lat, lon = world.site_lat[place], world.site_lon[place]
    distance = pairwise_km(unit_vectors(lat, lon), world.landmark_xyz)
    rtt = model.rtt_ms(rng, distance, model.draw_last_mile_ms(rng, (site.size, 1)))
    records = []
    for row in range(site.size):
        verdict = fast_verdict(world.field, world.fast_params, world.cells[licence[row]], rtt[row])
        if verdict.verdict in (FastVerdict.VERIFIED, FastVerdict.VIOLATION):
            records.append(
                SampleRecord(
                    chip_index=row,
                    class_name="smuggled" if moved[row] else "honest",
                    licence_iso3=world.country_codes[int(licence[row])],
                    true_lat_deg=float(lat[row]),
                    true_lon_deg=float(lon[row]),
                    truth_inside=not moved[row],
                    rtt_ms=tuple(float(x) for x in rtt[row]),
                    fast_verdict=verdict.verdict.name.lower(),
                )
            )
    kinds = {r.fast_verdict for r in records}
    assert kinds == {"verified", "violation"}, "the population must exercise both verdicts"
    summary = summarise_cross_check(cross_check(world, records))
    assert summary["fast_more_permissive"] == 0, summary["pairs"]
    assert summary["errors"] == []
