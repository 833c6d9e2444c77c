"""Real RTT sets: loaders, the IBM rebuild script, and the estimator against CBG on Azure's."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from benchmarks import rtt_sets
from benchmarks.calibration_eval import (
    _cbg_max_km,
    cbg_estimate,
    evaluate_audit,
    from_rtt_set,
)
from geo.calibration import CalibrationModel, CalibrationSample
from geo.geodesy import sphere_distance_km
from geo.measurement import LandmarkRtt
from scripts.build_ibm_latency import main as build_ibm


@pytest.fixture(scope="module")
def azure() -> rtt_sets.RttSet:
    return rtt_sets.azure()


def test_azure_set_is_symmetric_best_of_both_directions(azure: rtt_sets.RttSet) -> None:
    (rtt,) = azure.windows
    assert len(azure.ids) == 46 and rtt.shape == (46, 46)
    assert np.allclose(rtt, rtt.T, equal_nan=True)
    assert np.all(np.isnan(np.diag(rtt)))
    i, j = azure.ids.index("australiacentral"), azure.ids.index("australiacentral2")
    assert rtt[i, j] == 3.0  # the table says 3 one way and 4 the other: the best is kept
    assert np.count_nonzero(~np.isnan(rtt)) == 46 * 45


def test_ibm_rebuild_parses_every_dated_window(tmp_path: Path) -> None:
    table = (
        "| Average latency (ms) | Dallas | Tokyo |\n| --- | :---: | :---: |\n"
        "| **Dallas** |   | {a} |\n| **Tokyo** | {b} |  |\n"
    )
    markdown = tmp_path / "network-latency.md"
    markdown.write_text(
        "## 16 Aug 2026\n### Inter-region latency\n"
        + table.format(a=145, b=146)
        + "\n## 9 Aug 2026\n"
        + table.format(a=150, b=149)
        + "\n| Average latency (ms) | us-south-dal10-a |\n| **us-south-dal10-a** | 0.08 |\n"
    )
    assert build_ibm([str(markdown), "--out", str(tmp_path / "ibm")]) == 0
    loaded = rtt_sets.windowed(
        "ibm", tmp_path / "ibm" / "servers.csv", tmp_path / "ibm" / "pings.csv"
    )
    dallas, tokyo = loaded.ids.index("dallas"), loaded.ids.index("tokyo")
    assert sorted(float(w[dallas, tokyo]) for w in loaded.windows) == [145.0, 149.0]
    assert build_ibm([str(tmp_path / "ibm" / "servers.csv"), "--out", str(tmp_path / "x")]) == 1


def test_estimate_beats_classic_cbg_on_azure(azure: rtt_sets.RttSet) -> None:
    data = from_rtt_set(azure)
    n = len(data.ids)
    deg, rtt = data.claimed_deg, data.rtt_ms
    dist = sphere_distance_km(deg[:, None, 0], deg[:, None, 1], deg[None, :, 0], deg[None, :, 1])
    ours, cbg = [], []
    for t in range(0, n, 2):  # every other region as a leave-one-out target
        others = [i for i in range(n) if i != t]
        model = CalibrationModel.fit(
            CalibrationSample(data.ids[a], float(dist[a, b]), float(rtt[a, b]))
            for a in others
            for b in others
            if a != b
        )
        measurements = [
            LandmarkRtt(data.ids[i], float(deg[i, 0]), float(deg[i, 1]), float(rtt[t, i]))
            for i in others
        ]
        estimate = model.estimate(measurements)
        ours.append(
            float(sphere_distance_km(deg[t, 0], deg[t, 1], estimate.lat_deg, estimate.lon_deg))
        )
        lat, lon = cbg_estimate(deg[others], _cbg_max_km(rtt, others, t, dist))
        cbg.append(float(sphere_distance_km(deg[t, 0], deg[t, 1], lat, lon)))
    assert np.median(ours) <= 0.8 * np.median(cbg)
    assert not any(math.isnan(e) for e in ours)


def test_azure_audit_suspects_no_honest_region_and_catches_a_far_move(
    azure: rtt_sets.RttSet,
) -> None:
    result = evaluate_audit(from_rtt_set(azure), landmarks=4, seeds=1, seed=2)
    assert result["false_suspects"] == 0 and result["false_impossible"] == 0
    assert result["injected_recall"]["3000_km"] == 1.0
