"""The mesh audit (geo.audit) in the simulator: what it catches, and what it cannot."""

from typing import Any

from sim.simulate import simulate
from sim.world import Scenario

SMALL = {"chips": 240, "landmarks": 40, "grid_km": 200.0, "chunk_size": 120, "sample_size": 6}
# With this seed the liar (lm020) has peers near its true place, so its mesh RTTs are faster
# than light for the place it claims: the audit can prove it misplaced.
SEED_AUDIT_CATCHES = 1


def run(adversary: str, **overrides: Any) -> dict[str, Any]:
    params = {**SMALL, "seed": SEED_AUDIT_CATCHES, **overrides}
    return simulate(Scenario(adversary=adversary, smuggled_fraction=0.5, **params)).results


def test_honest_mesh_excludes_no_landmark():
    results = run("none")
    assert results["world"]["excluded_landmarks"] == []
    assert "impossible" not in results["world"]["audit"].values()


def test_audit_excludes_a_naive_liar_so_even_plain_verdicts_stay_sound():
    results = run("liar", robust_landmarks=0)
    liar = results["world"]["landmarks"][results["world"]["liar"]["landmark_index"]]["id"]
    assert results["world"]["excluded_landmarks"] == [liar]
    assert results["metrics"]["false_verifications"] == 0
    assert results["metrics"]["false_violations"] == 0
    assert results["cross_check"]["assess_false_verifications"] == 0
    assert results["cross_check"]["fast_more_permissive"] == 0
    # Excluded answers are dropped before the verdict, not counted as missing.
    assert results["metrics"]["classes"]["honest"]["missing_answer_share"] < 0.05


def test_without_the_audit_the_liar_stays_in():
    results = run("liar", robust_landmarks=1, audit=False)
    assert results["world"]["excluded_landmarks"] == []
    assert results["world"]["audit"] == {}
    assert results["metrics"]["false_verifications"] == 0


def test_hidden_liar_passes_the_audit_and_only_robust_verdicts_hold():
    """Delaying its mesh answers is enough to hide the lie: nothing is proven impossible."""
    results = run("hidden-liar", robust_landmarks=1)
    assert results["world"]["excluded_landmarks"] == []
    assert "impossible" not in results["world"]["audit"].values()
    assert results["metrics"]["false_verifications"] == 0
    assert results["metrics"]["false_violations"] == 0
