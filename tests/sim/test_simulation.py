import json
import multiprocessing
import sys
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from sim.adversaries import AdversaryParams
from sim.cli import main
from sim.errors import ScenarioError
from sim.simulate import simulate
from sim.world import Scenario

# Coarse cells keep each world quick to build; the fast path stays conservative at any size.
SMALL = {"chips": 240, "landmarks": 40, "grid_km": 200.0, "chunk_size": 120, "sample_size": 6}


def run(adversary: str, **overrides: Any) -> dict[str, Any]:
    params = {**SMALL, **overrides}
    scenario = Scenario(adversary=adversary, smuggled_fraction=0.5, **params)
    return simulate(scenario).results


@pytest.fixture(scope="module")
def baseline() -> dict[str, Any]:
    return run("none")


def smuggled(results: dict[str, Any]) -> Any:
    return results["metrics"]["classes"]["smuggled"]


def run_in_clean_process(adversary: str, **overrides: Any) -> dict[str, Any]:
    """`run` in a freshly spawned interpreter. The simulator forks its workers, and forking
    this pytest process, which earlier tests left with threads (servers, pools), can deadlock
    the child on a lock some thread held at the fork; the CLI's process has no such threads."""
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        return pool.submit(run, adversary, **overrides).result(timeout=300)


def test_seeded_runs_repeat_exactly_and_do_not_depend_on_workers(baseline):
    again = run_in_clean_process("none", workers=2)
    assert again["metrics"] == baseline["metrics"]
    assert again["cross_check"]["pairs"] == baseline["cross_check"]["pairs"]
    other_seed = run("none", seed=1)
    assert other_seed["metrics"] != baseline["metrics"]


def test_naive_smuggling_is_caught_and_nothing_false(baseline):
    metrics = baseline["metrics"]
    assert metrics["false_verifications"] == 0
    assert metrics["false_violations"] == 0
    assert 0.0 <= metrics["honest_verified_share"] <= 1.0
    assert metrics["rtt_anomaly"]["honest"]["alerted"] == 0  # no false location alert
    assert smuggled(baseline)["verdicts"]["violation"] > 0
    assert baseline["cross_check"]["fast_more_permissive"] == 0
    assert baseline["cross_check"]["assess_false_verifications"] == 0
    ratio = metrics["rtt_over_vacuum_rtt"]
    assert 2.5 <= ratio["p50"] <= 3.6 and 1.7 <= ratio["p05"] <= 2.4


@pytest.mark.parametrize("adversary", ["delay", "selective", "pull", "relay", "silence", "replay"])
def test_adversaries_hide_but_never_pass(adversary, baseline):
    results = run(adversary)
    metrics = results["metrics"]
    assert metrics["false_verifications"] == 0
    assert metrics["false_violations"] == 0
    assert smuggled(results)["verdicts"]["verified"] == 0
    assert results["cross_check"]["fast_more_permissive"] == 0
    assert results["cross_check"]["assess_false_verifications"] == 0
    if adversary in ("silence", "replay"):
        # Dropped and replayed (hence rejected) answers show up as missing answers.
        missing = smuggled(results)["missing_answer_share"]
        assert missing > smuggled(baseline)["missing_answer_share"] + 0.05
    if adversary == "replay":
        # Replays are rejected, so they cannot help: proof stays as strong as for the naive one.
        assert smuggled(results)["rates"]["violation"] <= smuggled(baseline)["rates"]["violation"]
    else:
        # Every other trick costs the smuggler proof: fewer violations than the naive one...
        assert smuggled(results)["rates"]["violation"] < smuggled(baseline)["rates"]["violation"]
    if adversary in ("delay", "relay"):
        # ...because added delay (or the relay's extra leg) widens every cap.
        wide = smuggled(results)["sound_area_upper_km2"]["p50"]
        assert wide > smuggled(baseline)["sound_area_upper_km2"]["p50"]


def test_lying_landmark_cannot_verify_with_robust_verdicts():
    results = run("liar")
    assert results["world"]["liar"] is not None
    assert results["metrics"]["false_verifications"] == 0
    assert results["metrics"]["false_violations"] == 0


def test_relocation_is_flagged_the_first_round_abroad():
    results = run("relocate", adversary_params=AdversaryParams(relocate_rounds=2))
    rounds = results["metrics"]["detection_rounds"]["not_verified"]
    assert results["metrics"]["false_verifications"] == 0
    assert set(rounds) <= {"1", "never"} and rounds.get("never", 0) == 0
    assert "staged" in results["metrics"]["classes"]
    # Two rounds abroad are fewer than rtt_anomaly's three: it cannot have fired yet.
    assert set(results["metrics"]["rtt_anomaly"]["rounds_after_move"]) == {"never"}


def test_going_dark_alerts_after_the_policy_window():
    params = AdversaryParams(relocate_rounds=3, dark_window_rounds=2)
    results = run("dark", adversary_params=params)
    alert = results["metrics"]["detection_rounds"]["alert"]
    assert alert == {"2": smuggled(results)["chip_rounds"] // 3, "never": 0}


def test_bad_scenarios_are_rejected():
    with pytest.raises(ScenarioError, match="unknown adversary 'teleport'"):
        Scenario(adversary="teleport")
    with pytest.raises(ScenarioError, match="at least 2 landmarks"):
        Scenario(landmarks=1)
    with pytest.raises(ScenarioError, match=r"k_best must be in \[2, 127\]"):
        Scenario(k_best=128)
    with pytest.raises(ScenarioError, match="distinct landmark sites"):
        simulate(Scenario(landmarks=5000, grid_km=200.0))


def test_cli_writes_json_and_pngs(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        [
            "sim",
            "--chips",
            "120",
            "--landmarks",
            "30",
            "--grid-km",
            "200",
            "--sample",
            "4",
            "--seed",
            "3",
            "--out",
            str(out),
            "--no-progress",
        ]
    )
    assert code == 0
    results = json.loads((out / "results.json").read_text())
    assert {
        "scenario",
        "world",
        "metrics",
        "cross_check",
        "timing",
        "peak_memory",
        "figures",
    } <= set(results)
    assert results["metrics"]["false_verifications"] == 0
    assert results["timing"]["wall_s"] > 0 and results["peak_memory"]["self_mib"] > 0
    # Its verdicts rest on software keys nobody copies, and both outputs say so.
    assert results["key_protection"].startswith("software key")
    for name in ("error_cdf.png", "verification_by_country.png", "world_map.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(capsys.readouterr().out)
    assert summary["false_verifications"] == 0
    assert summary["key_protection"].startswith("software key")


def test_cli_rejects_bad_latency_override_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "run"
    code = main(
        ["sim", "--chips", "10", "--out", str(out), "--latency", "loss_rate=2", "--no-progress"]
    )
    assert code == 2
    assert "loss_rate must be in [0, 1)" in capsys.readouterr().err
    assert not (out / "results.json").exists()


def test_cli_without_matplotlib_names_the_extra_and_writes_nothing(
    tmp_path, capsys, monkeypatch
):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as without the 'sim' extra
    monkeypatch.delitem(sys.modules, "sim.plots", raising=False)
    out = tmp_path / "run"
    assert main(["sim", "--chips", "10", "--out", str(out), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "the plots need matplotlib" in err and "pip install 'lightfence[sim]'" in err
    assert not out.exists()
