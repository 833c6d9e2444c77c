"""Rebuild the IBM Cloud VPC inter-region RTT set from IBM's public documentation.

    git clone https://github.com/ibm-cloud-docs/vpc
    .venv/bin/python scripts/build_ibm_latency.py vpc/_include-segments/network-latency.md

IBM publishes, every week, the 30-day *average* RTT between its VPC regions (file
`_include-segments/network-latency.md` of github.com/ibm-cloud-docs/vpc). That repository carries
no licence, so the numbers are not shipped here; this script rebuilds them into
`benchmarks/data/real/ibm/` (ignored by git), where `python -m benchmarks.calibration_eval` picks
them up. Every dated section becomes one measurement window (`window` column), so the audit can
be scored on evidence that must repeat across windows.

Region positions are the city each region is named after, from GeoNames (CC BY 4.0,
geonames.org; id in the comment); IBM does not publish data-centre coordinates.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from collections.abc import Sequence
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "benchmarks" / "data" / "real" / "ibm"

CITIES = {  # IBM region name -> (id, lat_deg, lon_deg); GeoNames ids
    "Dallas": ("dallas", 32.78306, -96.80667),  # 4684888
    "Toronto": ("toronto", 43.70643, -79.39864),  # 6167865
    "Washington DC": ("washington-dc", 38.89511, -77.03637),  # 4140963
    "Frankfurt": ("frankfurt", 50.11552, 8.68417),  # 2925533
    "London": ("london", 51.50853, -0.12574),  # 2643743
    "Madrid": ("madrid", 40.4165, -3.70256),  # 3117735
    "Montreal": ("montreal", 45.50884, -73.58781),  # 6077243
    "Chennai": ("chennai", 13.08784, 80.27847),  # 1264527
    "Mumbai": ("mumbai", 19.07283, 72.88261),  # 1275339
    "Osaka": ("osaka", 34.69379, 135.50107),  # 1853909
    "Sydney": ("sydney", -33.86785, 151.20732),  # 2147714
    "Tokyo": ("tokyo", 35.6895, 139.69171),  # 1850147
    "Sao Paulo": ("sao-paulo", -23.5475, -46.63611),  # 3448439
}

_SECTION = re.compile(r"^## (\d{1,2} \w{3} \d{4})\s*$")


def parse(text: str) -> list[tuple[str, str, str, float]]:
    """(window, source, destination, rtt_ms) from every dated inter-region table."""
    rows: list[tuple[str, str, str, float]] = []
    window: str | None = None
    header: list[str] | None = None
    for line in text.splitlines():
        match = _SECTION.match(line)
        if match:
            window, header = match.group(1), None
            continue
        if not line.startswith("|") or window is None:
            header = None if not line.startswith("|") else header
            continue
        cells = [c.strip().strip("*").strip() for c in line.strip().strip("|").split("|")]
        if cells[0] == "Average latency (ms)":
            header = cells[1:] if set(cells[1:]) <= set(CITIES) else None
            continue
        if header is None or cells[0] not in CITIES:
            continue
        for destination, value in zip(header, cells[1:], strict=True):
            if value and destination != cells[0]:
                rows.append((window, cells[0], destination, float(value)))
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("markdown", type=Path, help="_include-segments/network-latency.md")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    rows = parse(args.markdown.read_text(encoding="utf-8"))
    if not rows:
        print("no inter-region tables found", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    with (args.out / "servers.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["id", "lat", "lon"])
        for city_id, lat_deg, lon_deg in CITIES.values():
            writer.writerow([city_id, lat_deg, lon_deg])
    with (args.out / "pings.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["window", "a", "b", "rtt_ms"])
        for window, source, destination, rtt_ms in rows:
            writer.writerow([window, CITIES[source][0], CITIES[destination][0], rtt_ms])
    windows = len({row[0] for row in rows})
    print(f"{len(rows)} RTTs in {windows} windows -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
