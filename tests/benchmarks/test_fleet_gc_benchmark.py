"""`benchmarks.fleet_gc` runs the verifier without and with the start-up freeze that
`lightfence verifier serve` does, each in a process of its own."""

from __future__ import annotations

import json

import pytest

from benchmarks import fleet_gc


def test_gc_benchmark_compares_the_frozen_start_up(capsys: pytest.CaptureFixture[str]) -> None:
    assert fleet_gc.main(["--chips", "40", "--ticks", "1", "--due-per-tick", "10"]) == 0
    plain, frozen = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert (plain["freeze"], frozen["freeze"]) == (False, True)
    assert plain["objects_frozen"] == 0 and frozen["objects_frozen"] > 10_000
    # With the freeze the collector walks only what the service made after start-up.
    assert frozen["tracked_objects"] < plain["tracked_objects"] - 10_000
