"""The `Store` contract on both backends: every protocol method, called in one scenario, gives
the stated answer on SQLite and on PostgreSQL, and both give the same answers; rejected writes
raise the same typed error on both and lose nothing."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from protocol.keys import SoftwareSigner
from protocol.merkle import MemoryTree, SignedTreeHead, leaf_hash
from protocol.revocation import Revocation
from tests.verifier.pg_cluster import Cluster
from verifier import store as store_package
from verifier.config import default_config
from verifier.model import (
    AlertFilter,
    Chip,
    Landmark,
    Policy,
    Round,
    RttBaseline,
    StoredMeasurement,
)
from verifier.ops_model import Channel, Membership, Zone
from verifier.store import ConstraintError, DuplicateKeyError, Store, StoreError, open_store
from verifier.store.evidence_log import ChipHead, LogEntry
from verifier.store.ingest import NewBatch

# Methods whose SQL has no ORDER BY (their callers index the rows): compared as multisets.
UNORDERED = {"tasks_by_id", "tasks_overlapping", "round_tasks", "round_measurements",
             "mesh_measurements", "open_rounds", "due_chips"}
# Answers that differ by nature between the engines (a size on disk).
ENGINE_SPECIFIC = {"database_bytes"}
T0 = 1_700_000_000_000_000_000  # ns: well past 2**32, so 64-bit columns are exercised
S = 1_000_000_000


def _protocol_methods() -> set[str]:
    """Every method of `Store` and of the protocols it is made of."""
    parts = [c for c in Store.__mro__ if c.__module__ == Store.__module__]
    return {name for part in parts for name, value in vars(part).items()
            if not name.startswith("_") and callable(value)}


class Recorder:
    """Forwards to a store; records each method called and what it returned."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.called: set[str] = set()
        self.transcript: list[tuple[str, Any]] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self.store, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            self.called.add(name)
            if name != "transaction":  # a context manager object, not an answer
                self.transcript.append((name, result))
            return result

        return call


def _chip(chip_id: str, state: str = "pending") -> Chip:
    return Chip(chip_id, "owner", "H100", f"sn-{chip_id}", "127.0.0.1", 7000, "default",
                b"\x00\xffk" * 8, {"cert": chip_id}, {"allowed": ["DEU"]}, state, T0, None, T0,
                T0)


def _landmark(landmark_id: str, lat: float) -> Landmark:
    return Landmark(landmark_id, lat, 13.4, "127.0.0.1", 9000, b"\x01" * 32,
                    {"cert": landmark_id}, None, False, None, 0)


def _measurement(batch_id: str, nonce: bytes, *, target_kind: str = "chip",
                 target_id: str = "chip-a", landmark_id: str = "lm-1", round_id: str = "r1",
                 task_id: int = 1, sent_ns: int = T0 + 2 * S) -> StoredMeasurement:
    return StoredMeasurement(batch_id, landmark_id, target_kind, target_id, nonce, sent_ns,
                             4_000_000, "kernel", round_id, task_id,
                             json.dumps({"nonce": nonce.hex()}))


def scenario(s: Recorder) -> None:
    # tokens and revocations
    token_id = s.add_token(b"\xaa" * 32, "admin", "alice", None, T0)
    assert s.token_info_by_hash(b"\xaa" * 32).role == "admin"
    s.set_token_expiry(token_id, T0 + 10 * S)
    s.disable_token(token_id, by="bob", reason="leaked", now_unix_ns=T0 + S)
    s.disable_token(token_id, by="carol", reason="again", now_unix_ns=T0 + 2 * S)
    info = s.token_info(token_id)
    assert (info.disabled_by, info.disabled_unix_ns, info.expires_unix_ns) == (
        "bob", T0 + S, T0 + 10 * S)
    assert s.token_info(999) is None and len(s.token_infos()) == 1
    assert s.token_info_by_hash(b"\xaa" * 32) == info
    assert s.token_info_by_hash(b"\xbb" * 32) is None
    revocation = Revocation("chip", "id", "chip-z", T0, "stolen")
    assert s.add_revocation(revocation, "bob") is True
    assert s.add_revocation(revocation, "carol") is False  # the first one stands
    assert s.revocations() == [revocation]
    # registries: text keys come back in byte order on both engines
    s.put_policy(Policy("default", 60.0, 4, 10.0, 600.0))
    s.put_policy(Policy("default", 30.5, 3, 10.0, 600.0, 1, 45.25, "tee-bound"))
    s.put_policy(Policy("B-policy", 60.0, 4, 10.0, 600.0))
    assert s.policy("default") == Policy("default", 30.5, 3, 10.0, 600.0, 1, 45.25, "tee-bound")
    assert s.policy("nope") is None
    assert [p.name for p in s.policies()] == ["B-policy", "default"]
    margins = Policy("B-policy", 60.0, 4, 10.0, 600.0, rtt_margin_ms=7.5, anomaly_rounds=5,
                     proof_lost_rounds=20, proof_lost_min_s=0.0, site_slack_km=0.5,
                     baseline_rounds=30)
    s.put_policy(margins)
    assert s.policy("B-policy") == margins
    # learned RTT baselines: upsert per (chip, landmark), read in landmark order, reset per chip
    kl = RttBaseline("chip-a", "lm-kl", 3.139, 101.687, 1.25, 1, T0, T0)
    sg = RttBaseline("chip-a", "lm-sg", 1.352, 103.82, 7.5, 1, T0, T0)
    other = RttBaseline("chip-b", "lm-kl", 3.139, 101.687, 2.0, 3, T0, T0 + S)
    s.put_rtt_baselines([sg, kl, other])
    lowered = RttBaseline("chip-a", "lm-kl", 3.139, 101.687, 0.875, 2, T0, T0 + 2 * S)
    s.put_rtt_baselines([lowered])
    s.put_rtt_baselines([])
    assert s.rtt_baselines("chip-a") == [lowered, sg]
    assert s.reset_rtt_baselines("chip-a") == 2
    assert s.rtt_baselines("chip-a") == [] and s.rtt_baselines("chip-b") == [other]
    assert s.reset_rtt_baselines("chip-a") == 0
    for landmark_id, lat in (("lm-1", 52.5), ("Lm-0", 48.1), ("lm-2", 50.1)):
        s.put_landmark(_landmark(landmark_id, lat))
    assert [lm.landmark_id for lm in s.landmarks()] == ["Lm-0", "lm-1", "lm-2"]
    s.touch_landmark("lm-1", T0 + S)
    s.set_landmark_audit("lm-1", {"excess_ms": 1.5}, True)
    s.set_landmark_next_mesh("lm-1", T0 + 300 * S)
    lm1 = s.landmark("lm-1")
    assert (lm1.last_seen_unix_ns, lm1.audit, lm1.faulty, lm1.next_mesh_unix_ns) == (
        T0 + S, {"excess_ms": 1.5}, True, T0 + 300 * S)
    assert s.landmark("lm-9") is None
    for chip_id in ("chip-b", "chip-a", "Chip-c"):
        s.put_chip(_chip(chip_id))
    assert [c.chip_id for c in s.chips()] == ["Chip-c", "chip-a", "chip-b"]
    assert s.chip("chip-a") == _chip("chip-a") and s.chip("nope") is None
    s.set_chip_state("chip-a", "verified", T0 + 5 * S)
    s.set_chip_state("chip-a", "verified", T0 + 6 * S)  # same state: the since stays
    s.set_chip_state("chip-b", "verified", T0 + 5 * S)
    s.set_chip_next_round("chip-a", T0 + 60 * S)
    assert (s.chip("chip-a").state_since_unix_ns, s.chip("chip-a").next_round_unix_ns) == (
        T0 + 5 * S, T0 + 60 * S)
    assert sorted(c.chip_id for c in s.due_chips(T0 + 30 * S, 10)) == ["Chip-c", "chip-b"]
    assert [c.chip_id for c in s.chips_page(None, 2)] == ["Chip-c", "chip-a"]
    assert [c.chip_id for c in s.chips_page("chip-a", 2)] == ["chip-b"]
    assert [lm.landmark_id for lm in s.landmarks_page("Lm-0", 5)] == ["lm-1", "lm-2"]
    s.set_verified_until("chip-a", T0 + 100 * S)
    s.set_verified_until("chip-a", T0 + 200 * S)
    s.set_verified_until("chip-b", T0 + 7 * S)
    s.set_verified_until("chip-b", None)
    assert s.expire_verified(T0 + 150 * S) == ["chip-b"]  # chip-a's TTL still runs
    assert s.chip("chip-b").state == "inconclusive"
    # rounds and tasks
    with s.transaction():
        s.add_round(Round("r1", "chip", "chip-a", T0, T0 + 30 * S),
                    [("lm-1", "127.0.0.1", 7000), ("lm-2", "127.0.0.1", 7000)])
        extra = s.add_task("r1", landmark_id="Lm-0", target_kind="chip", target_id="chip-a",
                           host="127.0.0.1", port=7000, issued_unix_ns=T0,
                           expires_unix_ns=T0 + 30 * S)
    s.cancel_task(extra)
    assert s.round("r1") == Round("r1", "chip", "chip-a", T0, T0 + 30 * S)
    assert s.round("nope") is None
    assert s.rounds_past_deadline(T0, 10) == []
    assert [r.round_id for r in s.rounds_past_deadline(T0 + 31 * S, 10)] == ["r1"]
    assert [r.round_id for r in s.open_rounds()] == ["r1"]
    assert sorted(t.landmark_id for t in s.round_tasks("r1")) == ["lm-1", "lm-2"]
    taken = s.take_tasks("lm-1", T0 + S)
    assert [(t.task_id, t.target_id) for t in taken] == [(1, "chip-a")]
    assert s.take_tasks("lm-1", T0 + S) == []  # handed out once
    assert s.take_tasks("Lm-0", T0 + S) == []  # cancelled
    assert [t.task_id for t in s.stuck_tasks(["lm-2", "Lm-0"], T0 + S)] == [2]
    assert sorted(t.task_id for t in s.tasks_by_id([2, 1, 1, 99, extra])) == [1, 2]
    assert s.find_task("lm-1", "chip", "chip-a", T0 + 2 * S, S).task_id == 1
    assert s.find_task("lm-1", "chip", "chip-a", T0 + 100 * S, S) is None
    assert [t.task_id for t in s.tasks_overlapping("lm-2", ["chip-a", "chip-x"], T0,
                                                   T0 + S)] == [2]
    # ingestion
    assert s.batch_record("b1") is None
    s.ingest("b1", "lm-1", [_measurement("b1", b"n1"), _measurement("b1", b"n2",
                                                                    sent_ns=T0 + 3 * S)],
             '{"batch_id":"b1"}', T0 + 4 * S)
    view = s.ingest_view(["b2", "b1"], [b"n3", b"n1"], [2, 99, 1],
                         [("chip", "id", "chip-z"), ("chip", "id", "chip-a")])
    assert view.batches == {"b1": ("lm-1", '{"batch_id":"b1"}')}
    assert view.used_nonces == {b"n1"}
    assert [(t.task_id, t.answered) for t in view.tasks] == [(1, True), (2, False)]
    assert view.revocations == [revocation]
    s.ingest_batches([NewBatch("b2", "lm-2", [_measurement(
        "b2", b"n3", target_kind="landmark", target_id="lm-1", landmark_id="lm-2",
        round_id="mesh", task_id=2)], '{"batch_id":"b2"}')], T0 + 4 * S)
    assert s.batch_record("b1") == ("lm-1", '{"batch_id":"b1"}')
    assert s.used_nonces([b"n1", b"n9", b"n3"]) == {b"n1", b"n3"}
    assert s.chip("chip-a").last_response_unix_ns == T0 + 3 * S
    assert [t.answered for t in s.round_tasks("r1")] == [True, True]
    assert sorted(m.measurement_id for m in s.round_measurements("r1")) == [1, 2]
    assert [m.target_id for m in s.mesh_measurements(T0)] == ["lm-1"]
    assert s.measurement_records([2, 99, 1]) == [json.dumps({"nonce": b"n2".hex()}),
                                                 json.dumps({"nonce": b"n1".hex()})]
    assert s.measurement_records([]) == []
    assert s.count_measurements() == 3
    lms = ["lm-2", "lm-1", "Lm-0", "lm-9", "lm-1"]
    assert s.landmarks_answered(lms, T0, T0 + 60 * S) == {"lm-1"}
    assert s.landmarks_answered(lms, T0, T0 + 10 * S) == set()  # not yet due: still in flight
    assert s.landmarks_answered(lms, T0 + S, T0 + 60 * S) == set()  # issued before the window
    assert s.landmarks_answered([], T0, T0 + 60 * S) == set()
    # lm-2's task was never delivered and Lm-0's was cancelled: neither counts
    assert s.landmark_task_counts(lms, T0, T0 + 60 * S) == {"lm-1": (1, 1)}
    assert s.landmark_task_counts(lms, T0, T0 + 10 * S) == {}
    answered, cursor = s.rounds_answered(0)
    assert ([r.round_id for r in answered], cursor) == (["r1"], 3)
    assert s.rounds_answered(cursor) == ([], 3)
    assert s.count_rows("measurements") == 3
    with pytest.raises(ValueError, match="not a countable table"):
        s.count_rows("tokens; DROP TABLE chips")
    s.close_round("r1")
    assert s.open_rounds() == []
    # verdicts
    first = s.add_verdict("chip-a", round_id="r1", verdict="verified", created_unix_ns=T0,
                          measurement_ids=[1, 2], landmarks=[{"id": "lm-1"}],
                          assessment={"radius_km": 12.5}, reason="inside",
                          licence={"allowed": ["DEU"]}, reason_code=None,
                          key_protection="tee-bound")
    second = s.add_verdict("chip-a", round_id="r2", verdict="dark", created_unix_ns=T0 + S,
                           measurement_ids=[], landmarks=[], assessment=None, reason="silent",
                           licence={}, reason_code="no_answers")
    assert s.verdicts("chip-a", None, 10) == [second, first]
    assert s.verdicts("chip-a", second.verdict_id, 10) == [first]
    assert s.last_verdict("chip-a") == second and s.last_verdict("chip-b") is None
    # alerts and the webhook outbox
    opened = s.open_alert("went_dark", severity="high", subject_kind="chip",
                          subject_id="chip-a", message="dark", details={"since": T0},
                          now_unix_ns=T0, outbox=["http://hook-1", "http://hook-2"])
    other = s.open_alert("landmark_faulty", severity="medium", subject_kind="landmark",
                         subject_id="lm-1", message="faulty", details={}, now_unix_ns=T0,
                         outbox=[])
    assert s.open_alert("went_dark", severity="high", subject_kind="chip",
                        subject_id="chip-a", message="again", details={}, now_unix_ns=T0,
                        outbox=["http://hook-1"]) is None  # one unresolved per subject+type
    acked = s.update_alert(opened.alert_id, action="acknowledge", by="bob", reason="seen",
                           now_unix_ns=T0 + S, outbox=["http://hook-1"])
    assert (acked.status, acked.acknowledged_by) == ("acknowledged", "bob")
    assert s.alert(opened.alert_id) == acked and s.alert(999) is None
    assert s.unresolved_alert("chip", "chip-a", "went_dark") == acked
    assert s.unresolved_alert_subjects("chip", "went_dark") == {"chip-a"}  # acknowledged
    assert s.unresolved_alert_subjects("landmark", "landmark_faulty") == {"lm-1"}
    assert s.unresolved_alert_subjects("chip", "landmark_faulty") == set()
    assert s.count_open_alerts() == 2
    assert [a.alert_id for a in s.alerts(AlertFilter())] == [other.alert_id, opened.alert_id]
    assert s.alerts(AlertFilter(status="acknowledged", subject_id="chip-a")) == [acked]
    s.update_alert(opened.alert_id, action="resolve", by="bob", reason="back",
                   now_unix_ns=T0 + 2 * S, outbox=[])
    assert s.unresolved_alert("chip", "chip-a", "went_dark") is None
    assert s.unresolved_alert_subjects("chip", "went_dark") == set()
    due = s.due_outbox(T0 + S, 10)
    assert [(i.url, json.loads(i.body)["event"]) for i in due] == [
        ("http://hook-1", "alert.opened"), ("http://hook-2", "alert.opened"),
        ("http://hook-1", "alert.acknowledged")]
    s.outbox_done(due[0].outbox_id, T0 + S)
    s.outbox_retry(due[1].outbox_id, T0 + 60 * S, "HTTP 500", give_up=False)
    s.outbox_retry(due[2].outbox_id, T0 + 60 * S, "HTTP 500" * 100, give_up=True)
    assert s.due_outbox(T0 + S, 10) == []
    assert [(i.url, i.attempts) for i in s.due_outbox(T0 + 60 * S, 10)] == [("http://hook-2", 1)]
    assert [i.url for i in s.claim_outbox(T0 + 60 * S, 10, T0 + 90 * S)] == ["http://hook-2"]
    assert s.claim_outbox(T0 + 60 * S, 10, T0 + 90 * S) == []  # claimed until T0 + 90 s
    assert [i.url for i in s.due_outbox(T0 + 90 * S, 10)] == ["http://hook-2"]
    # replicas: the leader lease with its fencing token, and events relayed between replicas
    assert s.acquire_lease("leader", "replica-1", T0, 10 * S) == 1
    assert s.acquire_lease("leader", "replica-2", T0 + S, 10 * S) is None  # held
    assert s.acquire_lease("leader", "replica-1", T0 + S, 10 * S) == 1  # renewed
    assert s.lease_is("leader", "replica-1", 1) is True
    s.release_lease("leader", "replica-1")
    assert s.acquire_lease("leader", "replica-2", T0 + 2 * S, 10 * S) == 2
    assert s.lease_is("leader", "replica-1", 1) is False
    assert s.last_hub_event_id() == 0
    s.add_hub_events("replica-1", [("alert", '{"alert_id":1}'), (None, "ping")], T0)
    assert s.hub_event_ids_after(0, 10) == [1, 2]
    assert s.hub_event_ids_after(1, 10) == [2]
    assert s.hub_event_ids_after(0, 1) == [1]
    assert s.hub_events_by_id([2, 1, 7]) == [(1, "replica-1", "alert", '{"alert_id":1}'),
                                             (2, "replica-1", None, "ping")]
    assert s.hub_events_by_id([]) == []
    assert s.last_hub_event_id() == 2
    assert s.prune_hub_events(T0 + S) == 1  # the newest stays
    assert s.database_bytes() > 0
    # operations
    s.put_channel(Channel("ops-mail", "email", {"to": ["a@example.org"]}, True))
    s.put_channel(Channel("ops-mail", "email", {"to": ["b@example.org"]}, False))
    s.put_channel(Channel("Ops-slack", "slack", {"url": "http://slack"}, True))
    assert s.channel("ops-mail") == Channel("ops-mail", "email", {"to": ["b@example.org"]},
                                            False)
    assert [c.channel_id for c in s.channels()] == ["Ops-slack", "ops-mail"]
    rule = s.add_routing_rule("ops-mail", alert_types=["went_dark"], min_severity="high",
                              groups=["eu"], zones=[])
    slack = s.add_routing_rule("Ops-slack", alert_types=[], min_severity="low", groups=[],
                               zones=["z"])
    assert s.routing_rules() == [rule, slack]
    assert s.delete_routing_rule(rule.rule_id) is True
    assert s.delete_routing_rule(rule.rule_id) is False
    assert s.delete_channel("Ops-slack") is True and s.routing_rules() == []
    assert s.delete_channel("Ops-slack") is False
    mute = s.add_mute(reason="maintenance", chip_id="chip-a", group=None, zone=None,
                      landmark_id=None, alert_type="went_dark", created_by="bob",
                      created_unix_ns=T0, expires_unix_ns=T0 + 10 * S)
    assert s.mutes(None) == [mute] and s.mutes(T0 + 10 * S) == []
    assert s.mark_alert_muted(other.alert_id, mute.rule_id).muted_by_rule == mute.rule_id
    assert s.delete_mute(mute.rule_id) is True and s.delete_mute(mute.rule_id) is False
    alert = s.alert(other.alert_id)
    s.enqueue_notifications(["ops-mail"], "alert.opened", alert, T0)
    [note] = s.due_notifications(T0, 10)
    assert (note.channel_id, note.alert_id, json.loads(note.body)["event"]) == (
        "ops-mail", other.alert_id, "alert.opened")
    s.notification_retry(note.notification_id, T0 + 5 * S, give_up=False)
    assert s.due_notifications(T0, 10) == []
    s.notification_done(note.notification_id, T0 + 5 * S)
    assert s.due_notifications(T0 + 5 * S, 10) == []
    s.add_delivery(destination="ops-mail", kind="email", alert_id=other.alert_id,
                   event="alert.opened", attempt=1, time_unix_ns=T0, outcome="failed",
                   status_code=451, error="x" * 900)
    s.add_delivery(destination="ops-mail", kind="email", alert_id=other.alert_id,
                   event="alert.opened", attempt=2, time_unix_ns=T0 + S, outcome="delivered",
                   status_code=250, error=None)
    log = s.deliveries(destination="ops-mail", outcome=None, before_id=None, limit=10)
    assert [d.attempt for d in log] == [2, 1] and len(log[1].error or "") == 500
    assert s.deliveries(destination=None, outcome="failed", before_id=None, limit=10) == [log[1]]
    s.put_zone(Zone("z1", "Berlin", 52.5, 13.4, None))
    s.put_zone(Zone("z1", "Berlin DC", 52.5, 13.4, {"allowed": ["DEU"]}))
    s.put_zone(Zone("Z0", "Munich", 48.1, 11.6, None))
    assert s.zone("z1") == Zone("z1", "Berlin DC", 52.5, 13.4, {"allowed": ["DEU"]})
    assert s.zone("nope") is None and [z.zone_id for z in s.zones()] == ["Z0", "z1"]
    s.put_membership(Membership("chip-a", None, ("eu",)))
    s.put_membership(Membership("chip-a", "z1", ("eu", "prod")))
    assert s.membership("chip-a") == Membership("chip-a", "z1", ("eu", "prod"))
    assert s.membership("chip-b") is None and list(s.memberships()) == ["chip-a"]
    # key/value
    assert s.get_kv("calibration") is None
    s.put_kv("calibration", "v1")
    s.put_kv("calibration", "v2")
    assert s.get_kv("calibration") == "v2"
    for key in ("gpu:b", "gpu:a", "gpu", "gpu_x", "gpu%y"):
        s.put_kv(key, key.upper())
    assert s.kv_with_prefix("gpu:") == [("gpu:a", "GPU:A"), ("gpu:b", "GPU:B")]
    assert s.kv_with_prefix("gpu%") == [("gpu%y", "GPU%Y")]  # no wildcards
    assert s.kv_with_prefix("none") == []
    # fleet-sized writes, set-based (before retention: it deletes the newest task id)
    fleet = [_chip(f"fleet-{i}") for i in (2, 0, 1)]
    s.put_chips(fleet)
    s.put_chips([])
    assert s.chips_by_id(["fleet-1", "nope", "fleet-0", "fleet-1"]) == [fleet[1], fleet[2]]
    assert s.chips_by_id([]) == []
    s.put_chips([replace(fleet[0], owner="new owner", state="verified")])  # life kept
    assert (s.chip("fleet-2").owner, s.chip("fleet-2").state) == ("new owner", "pending")
    s.set_chips_next_round({"fleet-0": T0 + 500 * S, "fleet-1": T0 + 400 * S, "nope": T0})
    s.set_chips_next_round({})
    assert [c.next_round_unix_ns for c in s.chips_by_id(["fleet-2", "fleet-1", "fleet-0"])] == [
        T0 + 500 * S, T0 + 400 * S, T0]
    s.add_rounds([(Round("r3", "chip", "fleet-0", T0, T0 + 30 * S),
                   [("lm-1", "127.0.0.1", 7000), ("lm-2", "127.0.0.1", 7001)]),
                  (Round("r4", "landmark", "lm-1", T0, T0 + 20 * S),
                   [("lm-2", "127.0.0.1", 9000)])])
    s.add_rounds([])
    assert s.round("r4") == Round("r4", "landmark", "lm-1", T0, T0 + 20 * S)
    assert sorted((t.landmark_id, t.port, t.expires_unix_ns) for t in s.round_tasks("r3")) == [
        ("lm-1", 7000, T0 + 30 * S), ("lm-2", 7001, T0 + 30 * S)]
    # retention: old measurements and finished deliveries go; each chip keeps its last verdict
    deleted = s.prune(T0 + 31 * S, T0 + 100 * S, 1000)
    assert deleted == {"measurements": 3, "batches": 2, "tasks": 3, "rounds": 1,
                       "notifications": 1, "outbox": 2, "deliveries": 2}
    assert s.count_measurements() == 0 and s.batch_record("b1") is None
    assert s.prune_verdicts(T0 + 10 * S, 100) == 1
    assert s.verdicts("chip-a", None, 10) == [second]
    evidence_log(s)
    s.close()


def evidence_log(s: Recorder) -> None:
    """The evidence log's tables: dense indexes, complete subtrees, heads, the leader's queue."""
    assert s.log_size() == 0 and s.log_latest_tree_head() is None and s.log_tree_heads() == []
    with s.transaction():
        s.log_lock()
        assert s.log_append(b"alert-0", kind="alert", chip_id=None, time_unix_ns=T0,
                            chip_seq=None) == 0
    for i in range(1, 4):
        assert s.log_append(f"chip-a-{i}".encode(), kind="verdict", chip_id="chip-a",
                            time_unix_ns=T0 + i * S, chip_seq=i - 1) == i
    assert s.log_size() == 4
    tree = MemoryTree([leaf_hash(b"alert-0"), *(leaf_hash(f"chip-a-{i}".encode())
                                                for i in range(1, 4))])
    nodes = s.log_nodes([(0, 3), (1, 0), (1, 1), (2, 0)])
    assert nodes == {(0, 3): tree.perfect(0, 3), (1, 0): tree.perfect(1, 0),
                     (1, 1): tree.perfect(1, 1), (2, 0): tree.perfect(2, 0)}
    with pytest.raises(StoreError, match="no complete subtree"):
        s.log_nodes([(2, 1)])  # leaves 4..7 are not all in
    assert s.log_entry(2) == LogEntry(2, b"chip-a-2", "verdict", "chip-a", T0 + 2 * S, 1)
    assert s.log_entry(4) is None
    assert [e.index for e in s.log_chip_entries("chip-a", "time", T0 + 2 * S, T0 + 9 * S,
                                                None)] == [2, 3]
    assert [e.index for e in s.log_chip_entries("chip-a", "seq", 0, 1, 3)] == [1, 2]
    assert s.log_chip_head("chip-a", None) == ChipHead(2, 3, leaf_hash(b"chip-a-3"))
    assert s.log_chip_head("chip-a", 2) == ChipHead(0, 1, leaf_hash(b"chip-a-1"))
    assert s.log_chip_head("chip-b", None) is None
    key = SoftwareSigner(bytes(range(32)))  # the same heads on both backends
    heads = [SignedTreeHead.sign(key, 2, 10, tree.root(2)), SignedTreeHead.sign(key, 4, 11,
                                                                                 tree.root())]
    for head in heads:
        s.log_add_tree_head(head)
    assert s.log_tree_heads() == heads and s.log_latest_tree_head() == heads[1]
    with pytest.raises(DuplicateKeyError):  # one entry per chip and sequence number
        s.log_append(b"forked", kind="verdict", chip_id="chip-a", time_unix_ns=T0, chip_seq=2)
    assert s.log_size() == 4
    # A chained append numbers the entry after the chip's head and links to its leaf hash.
    links: list[tuple[int, bytes | None]] = []

    def link(seq: int, previous: bytes | None) -> bytes:
        links.append((seq, previous))
        return f"link-{seq}".encode()

    assert s.log_append_chained(link, kind="verdict", chip_id="chip-a", time_unix_ns=T0) == (4, 3)
    assert s.log_append_chained(link, kind="alert", chip_id="chip-b", time_unix_ns=None) == (5, 0)
    assert links == [(3, leaf_hash(b"chip-a-3")), (0, None)]
    tree.append(b"link-3")
    tree.append(b"link-0")
    assert s.log_nodes([(1, 2), (2, 0)]) == {(1, 2): tree.perfect(1, 2),
                                             (2, 0): tree.perfect(2, 0)}
    assert s.log_chip_head("chip-b", None) == ChipHead(0, 5, leaf_hash(b"link-0"))
    s.queue_evidence("alert", "chip-a", T0, '{"a":1}')
    s.queue_evidence("alert", None, T0 + S, '{"b":2}')
    queued = s.queued_evidence(10)
    assert [(q.kind, q.chip_id, q.time_unix_ns, q.body) for q in queued] == [
        ("alert", "chip-a", T0, '{"a":1}'), ("alert", None, T0 + S, '{"b":2}')]
    assert s.count_queued_evidence() == 2
    s.drop_queued_evidence(queued[0].queue_id)
    assert s.queued_evidence(1) == queued[1:] and s.count_queued_evidence() == 1


def test_every_method_behaves_as_stated(store: Store) -> None:
    recorder = Recorder(store)
    scenario(recorder)
    assert recorder.called == _protocol_methods(), "the scenario must call every method"


@pytest.fixture
def both(tmp_path: Path, pg_cluster: Cluster) -> Iterator[tuple[Store, Store]]:
    sqlite = open_store(default_config(data_dir=tmp_path))
    url = pg_cluster.fresh_url()
    postgres = open_store(default_config(data_dir=tmp_path, database_url=url))
    yield sqlite, postgres
    pg_cluster.drop(url)


def test_both_backends_answer_alike(both: tuple[Store, Store]) -> None:
    """Ids compare too, as this scenario inserts no row after deleting the newest one and has no
    refused insert: ids are opaque and increasing, but SQLite may give a deleted newest row's id
    again while PostgreSQL never does and may skip ids (docs/operations.md)."""
    transcripts = []
    for opened in both:
        recorder = Recorder(opened)
        scenario(recorder)
        transcripts.append(recorder.transcript)
    sqlite, postgres = transcripts
    assert len(sqlite) == len(postgres)
    for (name, on_sqlite), (_, on_postgres) in zip(sqlite, postgres, strict=True):
        if name in ENGINE_SPECIFIC:
            continue
        if name in UNORDERED:
            assert sorted(on_sqlite, key=repr) == sorted(on_postgres, key=repr), name
        else:
            assert on_sqlite == on_postgres, name


def test_a_reused_batch_id_is_refused_and_nothing_is_lost(store: Store) -> None:
    store.ingest("b1", "lm-1", [_measurement("b1", b"n1")], "{}", T0)
    with pytest.raises(DuplicateKeyError) as refused:
        store.ingest("b1", "lm-2", [_measurement("b1", b"n2")], "{}", T0)
    assert (refused.value.table, refused.value.columns) == ("batches", ("batch_id",))
    assert str(refused.value) == "batches: a row with this batch_id is already stored"
    assert store.batch_record("b1") == ("lm-1", "{}")
    assert store.used_nonces([b"n1", b"n2"]) == {b"n1"}  # the refused batch left nothing
    assert store.count_measurements() == 1


def test_a_group_of_batches_is_written_together_or_not_at_all(store: Store) -> None:
    """`ingest_batches`: several batches (one with no accepted record) in one write; a nonce
    reused anywhere in the group refuses the whole group and leaves nothing."""
    store.ingest_batches([NewBatch("b1", "lm-1", [_measurement("b1", b"n1")], "{}"),
                          NewBatch("b2", "lm-2", [], '{"accepted":0}'),
                          NewBatch("b3", "lm-1", [_measurement("b3", b"n2",
                                                               sent_ns=T0 + 5 * S)], "{}")],
                         T0)
    assert store.ingest_view(["b1", "b2", "b3"], [], []).batches == {
        "b1": ("lm-1", "{}"), "b2": ("lm-2", '{"accepted":0}'), "b3": ("lm-1", "{}")}
    with pytest.raises(DuplicateKeyError) as refused:
        store.ingest_batches([NewBatch("b4", "lm-1", [_measurement("b4", b"n4")], "{}"),
                              NewBatch("b5", "lm-1", [_measurement("b5", b"n2")], "{}")], T0)
    assert (refused.value.table, refused.value.columns) == ("measurements", ("nonce",))
    view = store.ingest_view(["b4", "b5"], [b"n1", b"n2", b"n4"], [])
    assert not view.batches
    assert view.used_nonces == {b"n1", b"n2"}
    assert store.count_measurements() == 2


def test_a_replayed_nonce_rolls_back_only_its_own_batch(store: Store) -> None:
    """Inside a group commit each batch has its own savepoint: the replay fails alone and the
    batches around it are committed."""
    store.ingest("b1", "lm-1", [_measurement("b1", b"n1")], "{}", T0)
    with store.transaction():
        store.ingest("b2", "lm-1", [_measurement("b2", b"n2")], "{}", T0)
        with pytest.raises(DuplicateKeyError) as refused, store.transaction():
            store.ingest("b3", "lm-1", [_measurement("b3", b"n3"),
                                        _measurement("b3", b"n1")], "{}", T0)
        store.ingest("b4", "lm-1", [_measurement("b4", b"n4")], "{}", T0)
    assert (refused.value.table, refused.value.columns) == ("measurements", ("nonce",))
    assert store.batch_record("b3") is None
    assert store.used_nonces([b"n1", b"n2", b"n3", b"n4"]) == {b"n1", b"n2", b"n4"}
    assert store.count_measurements() == 3


def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    with pytest.raises(RuntimeError), store.transaction():
        store.put_chip(_chip("chip-a"))
        store.put_kv("k", "v")
        raise RuntimeError("the caller gives up half-way")
    assert store.chip("chip-a") is None and store.get_kv("k") is None
    store.put_kv("k", "v")  # the store is usable afterwards
    assert store.get_kv("k") == "v"


def test_a_bad_chip_in_put_chips_stores_none(store: Store) -> None:
    store.put_chip(_chip("chip-a"))
    bad = replace(_chip("chip-c"), model=None)  # type: ignore[arg-type]  # NOT NULL column
    with pytest.raises(ConstraintError):
        store.put_chips([replace(_chip("chip-a"), owner="changed"), _chip("chip-b"), bad])
    assert [c.chip_id for c in store.chips()] == ["chip-a"]
    assert store.chip("chip-a") == _chip("chip-a")  # the update before the bad row undone


def test_a_duplicate_round_in_add_rounds_stores_none(store: Store) -> None:
    store.add_round(Round("r1", "chip", "chip-a", T0, T0 + S), [("lm-1", "h", 1)])
    with pytest.raises(DuplicateKeyError) as refused:
        store.add_rounds([(Round("r2", "chip", "chip-b", T0, T0 + S), [("lm-1", "h", 1)]),
                          (Round("r1", "chip", "chip-c", T0, T0 + S), [("lm-2", "h", 1)])])
    assert (refused.value.table, refused.value.columns) == ("rounds", ("round_id",))
    assert [r.round_id for r in store.open_rounds()] == ["r1"]
    assert store.count_rows("tasks") == 1 and store.round_tasks("r2") == []


def test_the_package_exports_one_error_base() -> None:
    assert issubclass(store_package.DuplicateKeyError, store_package.StoreError)
    assert issubclass(store_package.ConstraintError, store_package.StoreError)


def test_records_and_nonces_come_back_byte_for_byte(store: Store) -> None:
    """Measurements go in by COPY on PostgreSQL: text and bytes that need escaping there
    (tab, newline, backslash, NUL, non-ASCII) come back unchanged."""
    record = '{"note":"tab\\there\\nnew line \\\\ back\\u0000slash","city":"Zürich 東京"}\t\n\\'
    nonce = b"\x00\\\n\t\xff" + bytes(range(32))
    measurement = StoredMeasurement("b1", "lm-1", "chip", "chip-a", nonce, T0, 1, "kernel",
                                    "r1", 1, record)
    store.ingest("b1", "lm-1", [measurement], '{"tab":"\t"}', T0)
    assert store.measurement_records([1]) == [record]
    assert store.used_nonces([nonce, nonce[:-1]]) == {nonce}
    assert store.batch_record("b1") == ("lm-1", '{"tab":"\t"}')
