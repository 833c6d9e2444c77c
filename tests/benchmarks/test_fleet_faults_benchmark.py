"""`benchmarks.fleet_faults` runs at two sizes and alerts only the landmark that lost all."""

from __future__ import annotations

import json

import pytest

from benchmarks import fleet_faults


def test_fault_check_benchmark_alerts_the_silent_landmark_once(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert fleet_faults.main(["--chips", "40", "80", "--landmarks", "5", "--passes", "2",
                              "--index-cost", "40"]) == 0
    *runs, cost, summary = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert cost["index_cost"] == "sqlite" and cost["tasks"] == 680
    assert cost["with_index_cpu_us_per_task"] > 0 and cost["without_index_cpu_us_per_task"] > 0
    assert [(r["chips"], r["tasks_in_window"]) for r in runs] == [(40, 520), (80, 840)]
    for run in runs:
        assert run["alerted"] == ["lm-dead"]
        assert run["first_check_ms"] > 0 and run["steady_check_ms"] > 0
        assert run["old_aggregate_ms"] > 0
    assert summary["summary"]["sqlite"]["chips"] == [40, 80]
