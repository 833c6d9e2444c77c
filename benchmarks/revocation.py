"""What the key rule costs at ingestion: one `verifier.revocations.refusal` check per key (two
per record: the landmark's and the target's) against a revocation list of growing length.

    python -m benchmarks.revocation [--sizes 0 100 10000] [--repeat 5]

Prints JSON: per list size, the median over `repeat` runs of the mean time of one check of a key the
list does not name (the common case: every entry has to be ruled out), in microseconds.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import timeit

from protocol.revocation import Revocation, RevocationIndex
from verifier.revocations import KeyInfo, refusal


def check_us(size: int, repeat: int) -> float:
    index = RevocationIndex(
        [Revocation("chip", "id", f"chip-{i}", 0, "benchmark") for i in range(size)]
    )
    info = KeyInfo(os.urandom(32), 0, 2**40, "S-unlisted")
    timer = timeit.Timer(lambda: refusal(index, "chip", "chip-unlisted", info,
                                         sent_unix_ns=10**18, now_unix_ns=10**18))
    runs = []
    for _ in range(repeat):
        count, total_s = timer.autorange()
        runs.append(total_s / count * 1e6)
    return statistics.median(runs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[0, 100, 10_000])
    parser.add_argument("--repeat", type=int, default=5, help="runs per size (median)")
    args = parser.parse_args(argv)
    result = {"check_us_by_revocations": {str(n): round(check_us(n, args.repeat), 2)
                                          for n in args.sizes},
              "checks_per_record": 2}
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
