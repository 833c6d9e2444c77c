"""Every summary check of the demo can fail: fed a run where it should, it does."""

from typing import Any

import pytest

from lightfence.demo.runner import Snapshot
from lightfence.demo.scenario import small_scenario
from lightfence.demo.view import ALERT_DEADLINE_S, checks_passed, summary

NS = 1_000_000_000
SCENARIO = small_scenario()
FIRST_NS = 1_000 * NS


def chip_row(chip_id: str, state: str) -> dict[str, Any]:
    spec = next(c for c in SCENARIO.chips if c.chip_id == chip_id)
    return {"chip_id": chip_id, "owner": spec.owner, "licence": spec.licence, "state": state,
            "last_verdict": None}


def alert(type_: str, subject: str, opened_ns: int = FIRST_NS + 5 * NS) -> dict[str, Any]:
    return {"type": type_, "subject_id": subject, "severity": "high", "status": "open",
            "message": "m", "opened_unix_ns": opened_ns}


def good_run() -> Snapshot:
    states = {c.chip_id: "verified" for c in SCENARIO.chips}
    states |= {"gpu-kul-03": "inconclusive", "gpu-fra-03": "dark"}
    snapshot = Snapshot(
        chips=[chip_row(chip_id, state) for chip_id, state in states.items()],
        alerts=[
            alert("rtt_anomaly", "gpu-kul-03"),
            alert("went_dark", "gpu-fra-03"),
            alert("landmark_fault", "lm-chicago"),
            alert("replay_detected", "gpu-ash-01"),
        ],
        landmarks=[{"landmark_id": lm.landmark_id, "health": "alive"} for lm in SCENARIO.landmarks],
    )
    for chip_id, state in states.items():
        snapshot.verdict_counts[chip_id] = {state: 3, "inconclusive": 1}
        snapshot.first_round_unix_ns[chip_id] = FIRST_NS
    return snapshot


def test_a_good_run_passes_and_reports_the_verified_share() -> None:
    result = summary(good_run(), SCENARIO)
    assert checks_passed(result), result["checks"]
    shares = {c["chip_id"]: c["verified_share"] for c in result["chips"]}
    assert shares["gpu-ash-01"] == 0.75 and shares["gpu-kul-03"] == 0.0
    assert any("co-located" in line for line in result["notes"])


def test_an_inconclusive_smuggled_chip_without_a_location_alert_fails() -> None:
    run = good_run()
    run.alerts = [a for a in run.alerts if a["type"] != "rtt_anomaly"]
    run.alerts.append(alert("inconsistent_measurements", "gpu-kul-03"))  # not a location alert
    result = summary(run, SCENARIO)
    assert result["checks"]["smuggled_alerted"] is False
    assert not checks_passed(result)


def test_a_location_alert_after_the_deadline_fails() -> None:
    run = good_run()
    late = FIRST_NS + int((ALERT_DEADLINE_S + 1) * NS)
    run.alerts = [a if a["type"] != "rtt_anomaly" else alert("rtt_anomaly", "gpu-kul-03", late)
                  for a in run.alerts]
    assert summary(run, SCENARIO)["checks"]["smuggled_alerted"] is False


@pytest.mark.parametrize("type_", ["site_inconsistent", "rtt_anomaly", "rtt_above_baseline",
                                   "proof_lost"])
def test_a_location_alert_on_an_honest_chip_fails(type_: str) -> None:
    run = good_run()
    run.alerts.append(alert(type_, "gpu-fra-01"))
    result = summary(run, SCENARIO)
    assert result["checks"]["honest_no_location_alert"] is False
    assert not checks_passed(result)


def test_a_smuggled_chip_verified_once_fails() -> None:
    run = good_run()
    run.verdict_counts["gpu-kul-03"] = {"inconclusive": 5, "verified": 1}
    assert summary(run, SCENARIO)["checks"]["smuggled_never_verified"] is False
