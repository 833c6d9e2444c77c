import json
from pathlib import Path
from typing import Any

import pytest

from geo.cli import locate_lines, run_locate
from lightfence.cli import main

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "locate.jsonl"

GOOD: dict[str, Any] = {
    "id": "t1",
    "measurements": [
        {"landmark": "fra", "lat": 50.11, "lon": 8.68, "rtt_ms": 0.6},
        {"landmark": "ber", "lat": 52.52, "lon": 13.40, "rtt_ms": 4.5},
        {"landmark": "par", "lat": 48.86, "lon": 2.35, "rtt_ms": 5.0},
    ],
    "license": {"allowed": ["DEU"], "prohibited": ["CHN"], "tolerance_km": 0},
}


def run(records: list[str]) -> tuple[int, list[dict[str, Any]]]:
    import io

    out = io.StringIO()
    failures = locate_lines(records, out)
    return failures, [json.loads(line) for line in out.getvalue().splitlines()]


def with_measurement(**changes) -> str:
    record = json.loads(json.dumps(GOOD))
    record["measurements"][0].update(changes)
    return json.dumps(record)


def test_good_record_produces_all_output_fields() -> None:
    failures, [out] = run([json.dumps(GOOD)])
    assert failures == 0
    assert out["id"] == "t1" and out["verdict"] == "verified"
    assert set(out) >= {
        "estimate",
        "sound_region",
        "plausible_region",
        "sound_area_km2",
        "likely_region",
        "excluded_landmarks",
        "confidence",
        "inside_fraction",
    }


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "invalid JSON"),
        (with_measurement(lat=95), "latitude 95 is outside [-90, 90]"),
        (with_measurement(rtt_ms=float("nan")), "rtt_ms must be finite"),
        (with_measurement(rtt_ms=0), "rtt_ms must be > 0"),
        (with_measurement(rtt_ms=-1.5), "rtt_ms must be > 0"),
        (with_measurement(lat="north"), "must be numbers"),
        (json.dumps({**GOOD, "license": {"allowed": ["XYZ"]}}), "XYZ"),
        (json.dumps({**GOOD, "license": {"allowed": [{"type": "Polygon"}]}}), "coordinates"),
        (json.dumps({**GOOD, "measurements": GOOD["measurements"][:1]}), "at least 2 distinct"),
        (json.dumps({"id": "x"}), "missing 'measurements'"),
        (json.dumps({**GOOD, "extra": 1}), "unknown record keys: extra"),
        (json.dumps([1, 2]), "record must be a JSON object"),
    ],
)
def test_bad_record_reports_error_and_keeps_the_rest(line: str, message: str) -> None:
    failures, outputs = run([json.dumps(GOOD), line, "", json.dumps({**GOOD, "id": "t2"})])
    assert failures == 1
    assert [o.get("id") for o in outputs if "error" not in o] == ["t1", "t2"]
    [bad] = [o for o in outputs if "error" in o]
    assert message in bad["error"] and bad["line"] == 2


def test_calibration_gives_confidence() -> None:
    record = dict(GOOD)
    record["calibration"] = [
        {"landmark": a, "distance_km": d, "rtt_ms": r}
        for a, d, r in [
            ("fra", 420.0, 8.0),
            ("fra", 480.0, 9.5),
            ("ber", 420.0, 7.9),
            ("ber", 880.0, 15.0),
            ("par", 480.0, 8.8),
            ("par", 880.0, 14.1),
        ]
    ]
    failures, [out] = run([json.dumps(record)])
    assert failures == 0 and out["confidence"] is not None and out["likely_region"] is not None


def test_example_file_through_the_lightfence_command(tmp_path: Path) -> None:
    out_file = tmp_path / "out.jsonl"
    assert main(["locate", "--in", str(EXAMPLE), "--out", str(out_file)]) == 0
    outputs = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert len(outputs) == len(EXAMPLE.read_text().splitlines())
    verdicts = {o["id"]: o["verdict"] for o in outputs}
    assert verdicts["frankfurt-dc-01"] == "verified"
    assert verdicts["singapore-dc-02"] == "violation"
    assert verdicts["wrong-landmark"] == "inconsistent"


def test_failed_record_sets_exit_status(tmp_path: Path) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(json.dumps(GOOD) + "\n{broken\n")
    out_file = tmp_path / "out.jsonl"

    class Args:
        input = str(source)
        output = str(out_file)

    assert run_locate(Args()) == 1  # type: ignore[arg-type]
    assert len(out_file.read_text().splitlines()) == 2


def test_missing_input_file_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    class Args:
        input = str(tmp_path / "absent.jsonl")
        output = "-"

    assert run_locate(Args()) == 2  # type: ignore[arg-type]
    assert "absent.jsonl" in capsys.readouterr().err
