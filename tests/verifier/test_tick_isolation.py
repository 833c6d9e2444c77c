"""One round's failure never costs the others their verdicts. (A verdict whose evidence entry
cannot be appended is not recorded at all and its round is decided again:
tests/verifier/test_evidence_in_db.py.)"""

from __future__ import annotations

import dataclasses
import time
from typing import Any

import pytest

from geo.decision import Decision
from geo.decision import decide as rule
from tests.verifier.conftest import Harness
from tests.verifier.test_decide_all import GERMANY, _inputs
from tests.verifier.test_flow import GERMANY as SITES
from tests.verifier.test_flow import KASSEL, rtt_from, setup_germany
from verifier import verdicts


def _failing_batch(*_: Any, **__: Any) -> Any:
    raise RuntimeError("a bug in the batched solver")


def test_a_non_geo_error_costs_only_its_own_round(monkeypatch: pytest.MonkeyPatch) -> None:
    def decide(rtts: Any, licence: Any, *args: Any, **kwargs: Any) -> Decision:
        if any(r.landmark_id == "BAD" for r in rtts):
            raise RuntimeError("a bug in the solver")
        return rule(rtts, licence, *args, **kwargs)

    monkeypatch.setattr(verdicts, "assess_many", _failing_batch)
    monkeypatch.setattr(verdicts, "rule", decide)
    bad = (*GERMANY[:3], dataclasses.replace(GERMANY[3], landmark_id="BAD"))
    items = [_inputs("ok-1", GERMANY, {"allowed": ["DEU"]}),
             _inputs("broken", bad, {"allowed": ["DEU"]}),
             _inputs("ok-2", GERMANY, {"allowed": ["DEU"]})]
    decisions = verdicts.decide_all(items)
    assert [d.verdict for d in decisions] == ["verified", "inconclusive", "verified"]
    assert decisions[1].reason_code == "verdict_error"
    assert decisions[1].reason.startswith("verdict_error: RuntimeError: a bug in the solver")


@pytest.mark.asyncio
async def test_a_tick_records_every_other_verdict_when_one_fails(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    h = harness
    await setup_germany(h)
    r = await h.post("/v1/chips", h.fleet.chip_body("chip-2", {"allowed": ["DEU"]}))
    assert r.status_code == 200, r.text
    calls = []

    def decide(rtts: Any, licence: Any, *args: Any, **kwargs: Any) -> Decision:
        if rtts:  # rounds without answers (no_answer) also pass through the rule
            calls.append(rtts)
        if len(calls) == 1 and rtts:  # the first round decided fails, the next one does not
            raise RuntimeError("a bug in the solver")
        return rule(rtts, licence, *args, **kwargs)

    monkeypatch.setattr(verdicts, "assess_many", _failing_batch)
    monkeypatch.setattr(verdicts, "rule", decide)
    await h.service.tick(time.time_ns())
    for landmark_id in ("FRA", "BER", "MUC", "HAM"):
        headers = await h.token("landmark", landmark_id)
        tasks = (await h.client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0",
                                    headers=headers)).json()["tasks"]
        records = [h.fleet.record(landmark_id, t["target_id"], rtt_from(SITES[landmark_id],
                                                                        KASSEL))
                   for t in tasks if t["target_kind"] == "chip"]
        r = await h.post("/v1/measurements", h.fleet.batch(landmark_id, records).to_json(),
                         headers)
        assert r.status_code == 200 and r.json()["accepted"] == 2, r.text
    await h.service.tick(time.time_ns())
    found = {}
    for chip_id in ("chip-1", "chip-2"):
        chip = (await h.client.get(f"/v1/chips/{chip_id}", headers=h.dashboard)).json()
        found[chip_id] = (chip["last_verdict"]["verdict"], chip["last_verdict"]["reason_code"])
    assert sorted(found.values(), key=str) == sorted(
        [("inconclusive", "verdict_error"), ("verified", None)], key=str)
