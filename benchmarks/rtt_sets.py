"""Real RTT sets for the calibration benchmark (benchmarks/data/real/README.md says what each is).

Each loader returns the landmarks' listed positions and one symmetric RTT matrix per measurement
window (ms, NaN where unmeasured). A directed table (source -> destination) becomes symmetric by
keeping the smaller of the two directions, as a mesh keeps the best RTT it saw for a pair.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
REAL = Path(__file__).resolve().parent / "data" / "real"
AZURE_MATRIX = REAL / "azure_p50_2026-07.csv"
AZURE_REGIONS = REAL / "azure_regions.csv"
IBM_DIR = REAL / "ibm"


@dataclass(frozen=True, slots=True)
class RttSet:
    name: str
    ids: tuple[str, ...]
    listed_deg: FloatArray  # (n, 2) lat, lon as published
    windows: tuple[FloatArray, ...]  # each (n, n), symmetric, NaN diagonal


def _symmetric_min(directed: FloatArray) -> FloatArray:
    both = np.fmin(directed, directed.T)
    np.fill_diagonal(both, np.nan)
    return both


def azure(matrix: Path = AZURE_MATRIX, regions: Path = AZURE_REGIONS) -> RttSet:
    """Azure's published monthly P50 inter-region RTTs, for the regions with listed coordinates."""
    with regions.open() as handle:
        region_rows = list(csv.DictReader(handle))
    by_name = {r["name"]: i for i, r in enumerate(region_rows)}
    n = len(region_rows)
    directed = np.full((n, n), np.nan)
    with matrix.open() as handle:
        rows = list(csv.reader(handle))
    columns = rows[0][1:]
    for row in rows[1:]:
        a = by_name.get(row[0])
        for name, value in zip(columns, row[1:], strict=True):
            b = by_name.get(name)
            if a is not None and b is not None and value:
                directed[a, b] = float(value)
    listed = np.array([[float(r["lat"]), float(r["lon"])] for r in region_rows])
    ids = tuple(r["id"] for r in region_rows)
    return RttSet("azure-p50-2026-07", ids, listed, (_symmetric_min(directed),))


def windowed(name: str, servers: Path, pings: Path) -> RttSet:
    """A servers CSV (id,lat,lon) and a pings CSV ([window,]a,b,rtt_ms; best per pair/window)."""
    with servers.open() as handle:
        server_rows = list(csv.DictReader(handle))
    ids = tuple(r["id"] for r in server_rows)
    index = {landmark_id: i for i, landmark_id in enumerate(ids)}
    n = len(ids)
    windows: dict[str, FloatArray] = defaultdict(lambda: np.full((n, n), np.nan))
    with pings.open() as handle:
        for row in csv.DictReader(handle):
            a, b = index.get(row["a"]), index.get(row["b"])
            if a is None or b is None or a == b:
                continue
            matrix = windows[row.get("window", "")]
            matrix[a, b] = np.fmin(matrix[a, b], float(row["rtt_ms"]))
    listed = np.array([[float(r["lat"]), float(r["lon"])] for r in server_rows])
    return RttSet(name, ids, listed, tuple(_symmetric_min(m) for _, m in sorted(windows.items())))


def available() -> list[RttSet]:
    """Every real set present: Azure (shipped) and IBM (rebuilt by scripts/build_ibm_latency.py)."""
    sets = [azure()]
    if (IBM_DIR / "pings.csv").exists():
        sets.append(windowed("ibm-vpc-avg-2026-07", IBM_DIR / "servers.csv", IBM_DIR / "pings.csv"))
    return sets
