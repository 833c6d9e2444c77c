"""What tolerating f lying landmarks costs and buys (geo.robust.assess_tolerating).

    python -m benchmarks.robust [--trials 200] [--seed 1] [--landmarks 6]

Each trial: a chip at a random place (latitudes within 55 deg), a licensed 4-12 deg box either
around it or 1,300-4,000 km away, landmarks within 2,000 km of the chip answering with the
physical RTT plus 0-5 ms of delay. Two runs per trial: all landmarks honest, and one of them
lying its best (a 1 us RTT at the licensed box's centre for an outside chip, 2,500 km away for
an inside one) while the chip's owner delays the honest answers until their caps cover the
liar's spot. Prints JSON: false verdicts and honest verification rate per f, and the
median time per call.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import time
from dataclasses import replace
from typing import Any

import shapely

from geo.assessment import Verdict
from geo.errors import GeoError
from geo.geodesy import destination, distance_km, vacuum_rtt_ms
from geo.licence import Licence, Sea
from geo.measurement import LandmarkRtt
from geo.regions import Region
from geo.robust import assess_tolerating

_LIE_RTT_MS = 0.001


def _trial(rng: random.Random, landmarks: int) -> tuple[bool, Licence, list[LandmarkRtt],
                                                       list[LandmarkRtt]]:
    while True:
        chip = (rng.uniform(-55.0, 55.0), rng.uniform(-160.0, 160.0))
        inside = rng.random() < 0.5
        centre = chip if inside else destination(*chip, rng.uniform(0, 360),
                                                 rng.uniform(1300, 4000))
        half_lat, half_lon = rng.uniform(2, 6), rng.uniform(2, 6)
        box = shapely.box(centre[1] - half_lon, centre[0] - half_lat,
                          centre[1] + half_lon, centre[0] + half_lat)
        if abs(centre[1]) < 170 and box.contains(shapely.Point(chip[1], chip[0])) == inside:
            break
    honest = []
    for i in range(landmarks):
        lat, lon = destination(*chip, rng.uniform(0, 360), rng.uniform(20, 2000))
        rtt_ms = vacuum_rtt_ms(distance_km(lat, lon, *chip)) + rng.uniform(0.0, 5.0)
        honest.append(LandmarkRtt(f"lm{i}", lat, lon, rtt_ms))
    target = centre if not inside else destination(*chip, rng.uniform(0, 360), 2500.0)
    # The chip's owner colludes: it delays every honest answer just enough that each honest
    # cap also covers the liar's claimed spot, so the lie is consistent with all of them.
    covered = [replace(m, rtt_ms=max(m.rtt_ms,
                                     vacuum_rtt_ms(distance_km(m.lat_deg, m.lon_deg, *target))
                                     + 0.5))
               for m in honest[1:]]
    lying = [*covered, LandmarkRtt("lm0", *target, _LIE_RTT_MS)]
    # Strict: a box at sea is then no licence to be there (the bound this benchmark counts).
    return inside, Licence((Region("box", box),), (), sea=Sea.EXCLUDED), honest, lying


def run(trials: int, seed: int, landmarks: int) -> dict[str, Any]:
    rng = random.Random(seed)
    cases = [_trial(rng, landmarks) for _ in range(trials)]
    result: dict[str, Any] = {"trials": trials, "seed": seed, "landmarks": landmarks,
                              "outside": sum(not c[0] for c in cases)}
    for faulty in (0, 1, 2):
        false_verified = false_violation = honest_verified = 0
        seconds: list[float] = []
        for inside, licence, honest, lying in cases:
            started = time.perf_counter()
            try:
                clean = assess_tolerating(honest, licence, faulty_landmarks=faulty).verdict
                attacked = assess_tolerating(lying, licence, faulty_landmarks=faulty).verdict
            except GeoError:
                continue
            seconds.append((time.perf_counter() - started) / 2)
            honest_verified += inside and clean is Verdict.VERIFIED
            false_verified += (not inside) and attacked is Verdict.VERIFIED
            false_violation += inside and attacked is Verdict.VIOLATION
        inside_count = trials - result["outside"]
        result[f"f{faulty}"] = {
            "false_verified_with_one_liar": false_verified,
            "false_violation_with_one_liar": false_violation,
            "honest_inside_verified": honest_verified,
            "honest_inside_verified_rate": round(honest_verified / max(inside_count, 1), 3),
            "median_ms_per_call": round(statistics.median(seconds) * 1e3, 2),
        }
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--landmarks", type=int, default=6)
    args = parser.parse_args()
    print(json.dumps(run(args.trials, args.seed, args.landmarks), indent=2))


if __name__ == "__main__":
    main()
