"""The scale benchmarks still run end to end (tiny sizes; their figures are not checked)."""

from __future__ import annotations

import json

import pytest

from benchmarks import fleet, fleet_interleaved, ingest


def test_fleet_benchmark_decides_rounds_at_two_sizes(capsys: pytest.CaptureFixture[str]) -> None:
    assert fleet.main(["--chips", "30", "60", "--cycles", "1", "--due-per-tick", "10",
                       "--landmarks", "4"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    sizes, summary = lines[:2], lines[2]["summary"]
    assert [r["chips"] for r in sizes] == [30, 60]
    for result in sizes:
        assert result["tasks_planned"] == 40 and result["rounds_decided"] == 10
        assert result["db_bytes_per_chip_day"] > 0
        assert result["task_polls"] > 0  # polled while the scheduler and decider ran
    assert summary["sqlite"]["chips"] == [30, 60]


def test_interleaved_plan_benchmark_plans_at_every_size(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert fleet_interleaved.main(["--chips", "20", "40", "--cycles", "2", "--due-per-tick",
                                   "10", "--landmarks", "4"]) == 0
    report = json.loads(capsys.readouterr().out)
    cpu = report["sqlite"]["scheduling_cpu_ms_per_task"]
    assert len(cpu) == 2 and all(ms > 0 for ms in cpu)  # NaN (nothing planned) fails


@pytest.mark.slow
def test_ingest_benchmark_one_and_two_replicas(capsys: pytest.CaptureFixture[str]) -> None:
    assert ingest.main(["--records", "400", "--chips", "4", "--replicas", "2"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert [(r["backend"], r["replicas"]) for r in report["runs"]] == [("sqlite", 1),
                                                                       ("sqlite", 2)]
    assert all(r["measurements_per_s"] > 0 for r in report["runs"])
    # The host's busy share over the timed uploads: the verifier was working, so not 0.
    assert all(0 < r["host_busy_share"] <= 1 for r in report["runs"])
