"""`benchmarks.fleet_attestation` runs at two sizes and reports what each overdue pass did."""

from __future__ import annotations

import json

import pytest

from benchmarks import fleet_attestation


def test_overdue_pass_benchmark_alerts_the_silent_gpus_once(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert fleet_attestation.main(["--gpus", "40", "80", "--silent", "4", "--passes", "2"]) == 0
    *runs, summary = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["gpus"] for r in runs] == [40, 80]
    for run in runs:
        assert run["alerted_first_pass"] == 4 and run["alerted_later_passes"] == 0
        assert run["first_pass_ms"] > 0 and run["full_read_ms"] > 0 and run["steady_pass_ms"] >= 0
    assert summary["summary"]["sqlite"]["gpus"] == [40, 80]
