"""GPU bindings in their own table (migration 7) on both backends: what the overdue check reads,
an overdue alert raised once per silence and resolved by the next attestation, and the move of
the bindings a verifier kept in the key-value table before."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from protocol.gpu_attestation import GpuAttestation
from verifier import attestation
from verifier.alerts import Alerts
from verifier.config import default_config
from verifier.evidence_sink import EvidenceSink
from verifier.hub import Hub
from verifier.metrics import Metrics
from verifier.model import SEVERITY_BY_TYPE, AlertFilter, AlertType
from verifier.store import Store, open_store
from verifier.store.gpu_bindings import KV_PREFIX, GpuBinding
from verifier.store.schema import GPU_BINDINGS_VERSION

_NS = 1_000_000_000
_DAY_S = 86_400.0
_OVERDUE = AlertType.GPU_ATTESTATION_OVERDUE


def _alerts() -> Alerts:
    return Alerts(webhook_urls=(), hub=Hub(), metrics=Metrics(), evidence=EvidenceSink(None, b""))


def _binding(chip_id: str, last_attested_unix_ns: int) -> GpuBinding:
    return GpuBinding(chip_id=chip_id, gpu_id=f"GPU-{chip_id}", enrolled_unix_ns=1,
                      last_attested_unix_ns=last_attested_unix_ns, driver_version="550.90.07",
                      project=None, chain_sha256=("ab" * 32, "cd" * 32))


def _attest(store: Store, alerts: Alerts, chip_id: str, now_unix_ns: int,
            gpu_id: str | None = None) -> dict[str, object]:
    pending = attestation.PendingAttestation(chip_id, bytes(32), None)
    result = GpuAttestation(gpu_id=gpu_id or f"GPU-{chip_id}", chain_fingerprints=("ab" * 32,),
                            driver_version="550.90.07", vbios_version=None, project="2331",
                            measurement_count=1)
    return attestation.record_success(store, alerts, pending, result, now_unix_ns=now_unix_ns)


def _overdue(store: Store, chip_id: str) -> list[str]:
    """The statuses of the chip's overdue alerts, oldest first."""
    found = store.alerts(AlertFilter(type=_OVERDUE, subject_id=chip_id))
    return [alert.status for alert in sorted(found, key=lambda a: a.alert_id)]


def test_the_overdue_read_returns_only_unalerted_bindings_past_the_limit(store: Store) -> None:
    for chip_id, attested in [("c-new", 900), ("c-old", 100), ("c-older", 50), ("c-edge", 500)]:
        store.put_gpu_binding(_binding(chip_id, attested))
    assert store.gpu_binding("c-old") == _binding("c-old", 100)
    assert store.gpu_binding("nope") is None
    due = store.overdue_gpu_bindings(500, 10)  # strictly before 500
    assert [b.chip_id for b in due] == ["c-older", "c-old"]  # the longest silent first
    assert [b.chip_id for b in store.overdue_gpu_bindings(500, 1)] == ["c-older"]
    store.mark_gpu_overdue_alerted(["c-older", "unknown"])
    assert [b.chip_id for b in store.overdue_gpu_bindings(500, 10)] == ["c-old"]
    store.put_gpu_binding(_binding("c-older", 60))  # attested again: a new silence counts
    assert [b.chip_id for b in store.overdue_gpu_bindings(500, 10)] == ["c-older", "c-old"]


def test_an_overdue_gpu_is_alerted_once_per_silence(store: Store) -> None:
    alerts, now = _alerts(), time.time_ns()
    day_ns = int(_DAY_S * _NS)
    first = _attest(store, alerts, "gpu-1", now - 2 * day_ns)
    _attest(store, alerts, "gpu-2", now - 60 * _NS)  # attested a minute ago
    assert attestation.raise_overdue(store, alerts, max_age_s=_DAY_S, now_unix_ns=now) == 1
    (alert,) = store.alerts(AlertFilter(type=_OVERDUE))
    assert alert.subject_id == "gpu-1" and "not re-attested for 172800 s" in alert.message
    assert alert.details["last_attested_unix_ns"] == first["last_attested_unix_ns"]
    # Still silent a minute later: the alert stays open, nothing is read or raised again.
    assert attestation.raise_overdue(store, alerts, max_age_s=_DAY_S,
                                     now_unix_ns=now + 60 * _NS) == 0
    assert _overdue(store, "gpu-1") == ["open"] and _overdue(store, "gpu-2") == []
    # The GPU attests again: the alert is resolved and the enrolment kept.
    again = _attest(store, alerts, "gpu-1", now)
    assert again["enrolled_unix_ns"] == first["enrolled_unix_ns"]
    assert _overdue(store, "gpu-1") == ["resolved"]
    # It falls silent again: a new alert for the new silence.
    later = now + 2 * day_ns
    assert attestation.raise_overdue(store, alerts, max_age_s=_DAY_S, now_unix_ns=later) == 2
    assert _overdue(store, "gpu-1") == ["resolved", "open"]
    assert _overdue(store, "gpu-2") == ["open"]


def test_a_refused_attestation_alerts_only_an_enrolled_chip(store: Store) -> None:
    alerts, now = _alerts(), time.time_ns()
    attestation.record_failure(store, alerts, "gpu-1", "no GPU yet", now_unix_ns=now)
    assert store.alerts(AlertFilter(type=AlertType.GPU_ATTESTATION_FAILED)) == []
    _attest(store, alerts, "gpu-1", now)
    attestation.record_failure(store, alerts, "gpu-1", "enrolled with GPU X", now_unix_ns=now)
    (alert,) = store.alerts(AlertFilter(type=AlertType.GPU_ATTESTATION_FAILED))
    assert alert.status == "open" and "enrolled with GPU X" in alert.message
    _attest(store, alerts, "gpu-1", now + 1)
    assert store.alert(alert.alert_id).status == "resolved"  # type: ignore[union-attr]


def test_migration_moves_the_key_value_bindings(tmp_path: Path, database_url: str) -> None:
    config = default_config(data_dir=tmp_path, database_url=database_url)
    alerts, now = _alerts(), time.time_ns()
    old = {"chip_id": "gpu-1", "gpu_id": "GPU-A", "enrolled_unix_ns": 5,
           "last_attested_unix_ns": now - 3 * int(_DAY_S * _NS), "driver_version": "535.1",
           "project": None, "chain_sha256": ["ab" * 32]}
    store = open_store(config)
    try:  # the database as migration 6 left it, as a verifier of that version filled it
        with store.transaction():
            store._db.execute("DROP TABLE gpu_bindings")  # type: ignore[attr-defined]
            store._db.execute("DELETE FROM schema_version WHERE version = ?",  # type: ignore[attr-defined]
                              (GPU_BINDINGS_VERSION,))
        store.put_kv(KV_PREFIX + "gpu-1", json.dumps(old))
        store.put_kv(KV_PREFIX + "gpu-2", json.dumps(old | {"chip_id": "gpu-2",
                                                            "last_attested_unix_ns": now}))
        store.put_kv("gpu_challenge:gpu-1", json.dumps({}))
        store.put_kv("calibration", "{}")
        # the old code's overdue alert, already open
        assert store.open_alert(_OVERDUE, severity=SEVERITY_BY_TYPE[_OVERDUE], subject_kind="chip",
                                subject_id="gpu-1", message="old", details={},
                                now_unix_ns=now, outbox=()) is not None
    finally:
        store.close()
    store = open_store(config)
    try:
        assert attestation.binding(store, "gpu-1") == old
        assert store.gpu_binding("gpu-2") is not None
        assert store.kv_with_prefix(KV_PREFIX) == []  # moved, not copied
        assert store.get_kv("gpu_challenge:gpu-1") == "{}" and store.get_kv("calibration") == "{}"
        # The open alert is found, not doubled, and the binding is not read again.
        assert attestation.raise_overdue(store, alerts, max_age_s=_DAY_S, now_unix_ns=now) == 1
        assert attestation.raise_overdue(store, alerts, max_age_s=_DAY_S, now_unix_ns=now) == 0
        assert _overdue(store, "gpu-1") == ["open"]
    finally:
        store.close()


def test_an_overdue_pass_alerts_at_most_its_share(store: Store,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """A mass silence is alerted over several passes, the longest silent first."""
    monkeypatch.setattr(attestation, "OVERDUE_PER_PASS", 2)
    alerts, now = _alerts(), time.time_ns()
    for i in range(5):
        _attest(store, alerts, f"gpu-{i}", now - (10 - i) * _NS)
    passes = [attestation.raise_overdue(store, alerts, max_age_s=0.0, now_unix_ns=now)
              for _ in range(4)]
    assert passes == [2, 2, 1, 0]
    assert [_overdue(store, f"gpu-{i}") for i in range(5)] == [["open"]] * 5
