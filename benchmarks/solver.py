"""Solver benchmark: full `assess()` verdicts per second on one core.

Ten landmarks across Europe, chips at random places in Germany and its neighbours, RTTs at
1.5-3x the vacuum-light RTT plus 0.2 ms, licence {"allowed": ["DEU", "FRA"], "prohibited":
["CHN"]} (country containment included), resolution 5 km. Prints one JSON object with the
best of REPEATS runs in wall time (`verdicts_per_s`) and in this process's CPU time
(`cpu_verdicts_per_s`, steadier when other jobs share the cores), one `assess()` call per
round, and the same for `assess_many()` over batches of BATCH rounds (`batch_verdicts_per_s`,
`cpu_batch_verdicts_per_s`), the two interleaved in each pass so both see the same load.
"""

from __future__ import annotations

import json
import random
import time

from geo.assess import assess
from geo.assess_batch import assess_many
from geo.assessment import Assessment, SolverParams, Verdict
from geo.geodesy import distance_km, vacuum_rtt_ms
from geo.licence import licence_from_json
from geo.measurement import LandmarkRtt

LANDMARKS = {
    "fra": (50.11, 8.68),
    "par": (48.86, 2.35),
    "ams": (52.37, 4.90),
    "ber": (52.52, 13.40),
    "waw": (52.23, 21.01),
    "vie": (48.21, 16.37),
    "mad": (40.42, -3.70),
    "lon": (51.51, -0.13),
    "sto": (59.33, 18.07),
    "mil": (45.46, 9.19),
}
TARGETS = 200
REPEATS = 5
BATCH = 100


def main() -> None:
    rng = random.Random(7)
    params = SolverParams(resolution_km=5.0)
    licence = licence_from_json({"allowed": ["DEU", "FRA"], "prohibited": ["CHN"]})
    rounds = []
    for _ in range(TARGETS):
        chip = (rng.uniform(45.0, 55.0), rng.uniform(2.0, 16.0))
        inflation = rng.uniform(1.5, 3.0)
        rounds.append(
            [
                LandmarkRtt(
                    name, lat, lon, vacuum_rtt_ms(distance_km(lat, lon, *chip)) * inflation + 0.2
                )
                for name, (lat, lon) in LANDMARKS.items()
            ]
        )
    assess(rounds[0], licence, params=params)  # warm caches (country unions, imports)
    items = [(r, licence) for r in rounds]
    best_s = best_cpu_s = best_batch_s = best_batch_cpu_s = float("inf")
    verdicts: dict[str, int] = {}
    for _ in range(REPEATS):
        start, start_cpu = time.perf_counter(), time.process_time()
        results = [assess(r, licence, params=params) for r in rounds]
        best_s = min(best_s, time.perf_counter() - start)
        best_cpu_s = min(best_cpu_s, time.process_time() - start_cpu)
        verdicts = {v.value: sum(a.verdict is v for a in results) for v in Verdict}
        start, start_cpu = time.perf_counter(), time.process_time()
        batched: list[Assessment] = []
        for first in range(0, TARGETS, BATCH):
            batched += assess_many(items[first : first + BATCH], params=params)
        best_batch_s = min(best_batch_s, time.perf_counter() - start)
        best_batch_cpu_s = min(best_batch_cpu_s, time.process_time() - start_cpu)
        if [a.verdict for a in batched] != [a.verdict for a in results]:
            raise SystemExit("assess_many disagrees with assess")  # the tests forbid this
    print(
        json.dumps(
            {
                "benchmark": "solver",
                "verdicts_per_s": round(TARGETS / best_s, 1),
                "ms_per_verdict": round(best_s / TARGETS * 1000.0, 3),
                # CPU time of this process: steadier than wall time on a shared machine.
                "cpu_verdicts_per_s": round(TARGETS / best_cpu_s, 1),
                "batch_verdicts_per_s": round(TARGETS / best_batch_s, 1),
                "batch_ms_per_verdict": round(best_batch_s / TARGETS * 1000.0, 3),
                "cpu_batch_verdicts_per_s": round(TARGETS / best_batch_cpu_s, 1),
                "batch_size": BATCH,
                "landmarks": len(LANDMARKS),
                "resolution_km": params.resolution_km,
                "targets": TARGETS,
                "verdicts": verdicts,
            }
        )
    )


if __name__ == "__main__":
    main()
