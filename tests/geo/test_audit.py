"""Landmark audit: misplaced landmarks are blamed, honest partners are not."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from geo.audit import audit_landmarks
from geo.errors import GeoError
from geo.geodesy import distance_km
from lightfence.cli import main

EUROPE = {
    "lon": (51.51, -0.13),
    "par": (48.86, 2.35),
    "fra": (50.11, 8.68),
    "ams": (52.37, 4.90),
    "ber": (52.52, 13.40),
    "mad": (40.42, -3.70),
    "rom": (41.90, 12.50),
    "war": (52.23, 21.01),
    "sto": (59.33, 18.07),
    "vie": (48.21, 16.37),
}


def _mesh(true: dict[str, tuple[float, float]]) -> list[tuple[str, str, float]]:
    ids = sorted(true)
    # Fibre at 2/3 c with a 1.8x path inflation and 1 ms of fixed delay: an honest mesh.
    return [
        (a, b, 2 * distance_km(*true[a], *true[b]) * 1.8 / 199.86 + 1.0)
        for i, a in enumerate(ids)
        for b in ids[i + 1 :]
    ]


def test_honest_mesh_is_all_ok() -> None:
    result = audit_landmarks(EUROPE, _mesh(EUROPE))
    assert {a.status for a in result.values()} == {"ok"}


def test_swapped_pair_is_flagged_and_partners_are_not() -> None:
    claimed = dict(EUROPE)
    claimed["mad"], claimed["sto"] = EUROPE["sto"], EUROPE["mad"]
    result = audit_landmarks(claimed, _mesh(EUROPE))
    flagged = {k for k, v in result.items() if v.status != "ok"}
    assert flagged == {"mad", "sto"}
    kinds = {e["kind"] for e in result["sto"].evidence}
    assert kinds == {"position_inconsistent", "faster_than_peers"}  # both tests see the swap
    evidence = next(e for e in result["sto"].evidence if e["kind"] == "faster_than_peers")
    assert evidence["rtt_ms"] < evidence["min_rtt_ms"]
    [position] = [e for e in result["sto"].evidence if e["kind"] == "position_inconsistent"]
    # Its RTTs point back to Stockholm, where it really is.
    assert distance_km(*EUROPE["sto"], position["best_lat_deg"], position["best_lon_deg"]) < 300


def test_single_wrong_landmark_gets_the_blame_alone() -> None:
    claimed = dict(EUROPE)
    claimed["war"] = (40.71, -74.01)  # listed in New York
    result = audit_landmarks(claimed, _mesh(EUROPE))
    assert result["war"].status == "impossible"
    assert all(result[k].status == "ok" for k in EUROPE if k != "war")
    assert len(result["war"].evidence) >= 5  # one line per contradicting peer


def test_faster_than_fibre_is_suspect_not_impossible() -> None:
    claimed = dict(EUROPE)
    claimed["vie"] = (47.0, 19.0)  # a few hundred km off: breaks 2/3 c, not vacuum
    mesh = [(a, b, rtt * 0.62 if "vie" in (a, b) else rtt) for a, b, rtt in _mesh(EUROPE)]
    result = audit_landmarks(claimed, mesh)
    assert result["vie"].status in {"suspect", "impossible"}
    assert sum(a.status != "ok" for a in result.values()) == 1


@pytest.mark.parametrize(
    ("mesh", "message"),
    [
        ([("lon", "xxx", 5.0)], "unknown landmark 'xxx'"),
        ([("lon", "par", 0.0)], "finite and > 0"),
        ([("lon", "par", float("nan"))], "finite and > 0"),
    ],
)
def test_bad_mesh_rows_are_rejected(mesh: list[tuple[str, str, float]], message: str) -> None:
    with pytest.raises(GeoError, match=message):
        audit_landmarks(EUROPE, mesh)


def test_bad_position_is_rejected() -> None:
    with pytest.raises(GeoError, match="latitude 95"):
        audit_landmarks({"a": (95.0, 0.0), "b": (0.0, 0.0)}, [("a", "b", 10.0)])


def _write(tmp_path: Path, claimed: dict[str, tuple[float, float]]) -> tuple[Path, Path]:
    landmarks = tmp_path / "l.csv"
    landmarks.write_text(
        "id,lat,lon\n" + "".join(f"{k},{lat},{lon}\n" for k, (lat, lon) in claimed.items())
    )
    mesh = tmp_path / "m.csv"
    mesh.write_text("a,b,rtt_ms\n" + "".join(f"{a},{b},{r}\n" for a, b, r in _mesh(EUROPE)))
    return landmarks, mesh


def test_cli_prints_json_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    claimed = dict(EUROPE)
    claimed["mad"], claimed["sto"] = EUROPE["sto"], EUROPE["mad"]
    landmarks, mesh = _write(tmp_path, claimed)
    assert main(["landmarks", "audit", "--landmarks", str(landmarks), "--mesh", str(mesh)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["flagged"] == 2
    assert report["landmarks"]["lon"] == {"status": "ok", "evidence": []}
    assert report["landmarks"]["mad"]["status"] == "suspect"


def test_cli_reports_bad_csv_without_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    landmarks, mesh = _write(tmp_path, EUROPE)
    landmarks.write_text("id,lat\nlon,51.5\n")
    assert main(["landmarks", "audit", "--landmarks", str(landmarks), "--mesh", str(mesh)]) == 2
    assert "missing column(s) lon" in capsys.readouterr().err


def test_one_fast_path_is_not_a_suspect() -> None:
    # A direct cable 40 % faster than every other path: one partner is no evidence of a wrong
    # position (a misplaced landmark looks fast to several independent partners).
    mesh = [(a, b, rtt * 0.6 if {a, b} == {"lon", "mad"} else rtt) for a, b, rtt in _mesh(EUROPE)]
    result = audit_landmarks(EUROPE, mesh)
    assert {a.status for a in result.values()} == {"ok"}


def test_suspect_evidence_names_several_independent_partners() -> None:
    claimed = dict(EUROPE)
    claimed["ber"] = (55.0, 25.0)  # ~900 km off to the north-east: fast to the west
    result = audit_landmarks(claimed, _mesh(EUROPE))
    assert result["ber"].status == "suspect"
    fast = [e for e in result["ber"].evidence if e["kind"] == "faster_than_peers"]
    assert len({e["peer"] for e in fast}) >= 2
    assert all(result[k].status == "ok" for k in EUROPE if k != "ber")


def test_in_a_dense_mesh_two_fast_partners_are_not_enough() -> None:
    # 90 landmarks: with hundreds of partners a few honest paths beat any quantile, so a suspect
    # needs PARTNER_SHARE of its partners too (here 3 of 89), not just 2.
    grid = {f"g{i}-{j}": (40.0 + 2.0 * i, -5.0 + 3.75 * j) for i in range(10) for j in range(9)}
    fast = {"g0-0": {"g9-8", "g9-0"}}
    mesh = [
        (a, b, rtt * 0.6 if b in fast.get(a, ()) or a in fast.get(b, ()) else rtt)
        for a, b, rtt in _mesh(grid)
    ]
    assert audit_landmarks(grid, mesh)["g0-0"].status == "ok"
    fast["g0-0"].add("g0-8")  # a third independent partner: now it is probably misplaced
    mesh = [
        (a, b, rtt * 0.6 if b in fast.get(a, ()) or a in fast.get(b, ()) else rtt)
        for a, b, rtt in _mesh(grid)
    ]
    assert audit_landmarks(grid, mesh)["g0-0"].status == "suspect"
