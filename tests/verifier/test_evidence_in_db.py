"""The evidence log in the verifier's database (both backends): a verdict, its round's close and
its evidence entry commit together; only the leader appends, so a paused old leader appends
nothing; alerts raised outside the leader's transactions wait in a queue the leader drains; a
log from a former `<data_dir>/verifier.sqlite3` file is imported once, and a database holding
another log is refused."""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from audit.verify import verify_bundle
from keystore.key_files import write_key_file
from protocol.keys import SoftwareSigner
from tests.verifier.conftest import Harness
from tests.verifier.test_flow import KASSEL, run_round, setup_germany
from verifier.alerts import Alerts
from verifier.config import default_config
from verifier.db import Db
from verifier.errors import ConfigError
from verifier.evidence import export_bundle
from verifier.evidence_import import EvidenceImportError, import_file_log
from verifier.evidence_sink import EvidenceSink
from verifier.hub import Hub
from verifier.lease import LEADER_LEASE, Leadership, LeaseLostError
from verifier.metrics import Metrics
from verifier.model import AlertType
from verifier.store import Store, open_store
from verifier.translog import TransparencyLog
from verifier.tree_heads import TreeHeadSigner

_NS = 1_000_000_000


class LogFailure(RuntimeError):
    """What the test makes the evidence log's append raise."""


def _rows(store: Store, sql: str) -> list[Any]:
    return list(store._all(sql))  # type: ignore[attr-defined]


@pytest.mark.asyncio
async def test_a_verdict_whose_entry_fails_is_not_recorded_and_its_round_is_decided_later(
        harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The append fails inside the verdict's transaction, after its entry was written: no
    verdict, no entry, the round open. The next tick decides it once, with its entry, and the
    bundle audits."""
    h = harness
    store = h.service.db.store
    await setup_germany(h)
    write = store._log_write  # type: ignore[attr-defined]

    def broken(*args: Any, **kwargs: Any) -> int:
        write(*args, **kwargs)
        raise LogFailure("the log's table is unwritable")

    monkeypatch.setattr(store, "_log_write", broken)
    await run_round(h, "chip-1", KASSEL)
    assert _rows(store, "SELECT COUNT(*) FROM verdicts")[0][0] == 0
    assert store.log_size() == 0
    open_rounds = [r for r in store.open_rounds() if r.target_kind == "chip"]
    assert len(open_rounds) == 1 and store.round_measurements(open_rounds[0].round_id)

    monkeypatch.undo()
    await h.service.tick(open_rounds[0].deadline_unix_ns + 1)
    verdicts = _rows(store, "SELECT round_id, verdict FROM verdicts")
    assert [(r[0], r[1]) for r in verdicts] == [(open_rounds[0].round_id, "verified")]
    assert store.round(open_rounds[0].round_id) is None  # closed with its verdict
    entries = [e for e in store.log_chip_entries("chip-1", "time", 0, 2**62, None)
               if e.kind == "verdict"]
    assert [json.loads(e.entry)["round_id"] for e in entries] == [open_rounds[0].round_id]
    heads = h.service.tree_heads
    log = h.service.evidence.log
    assert heads is not None and log is not None
    bundle = await h.service.db.run(lambda _: export_bundle(
        log, "chip-1", 0, 2**62, signer=heads.signer, sign_fresh_head=True,
        now_unix_s=int(time.time())))
    report = verify_bundle(bundle, ca_public_key=h.fleet.ca.public_key(),
                           log_public_key=heads.public_key)
    assert report.ok and report.counts["recomputed_verdicts"] == 1, report.findings


def _alerts(log: TransparencyLog | None) -> tuple[Alerts, EvidenceSink]:
    evidence = EvidenceSink(log, b"")
    return Alerts(webhook_urls=(), hub=Hub(), metrics=Metrics(), evidence=evidence), evidence


def _raise(alerts: Alerts, store: Store, chip_id: str) -> None:
    alerts.raise_alert(store, AlertType.WENT_DARK, subject_kind="chip", subject_id=chip_id,
                       message="dark", details={}, now_unix_ns=time.time_ns())


@pytest.mark.asyncio
async def test_a_paused_old_leader_appends_nothing(tmp_path: Path, database_url: str) -> None:
    config = default_config(data_dir=tmp_path, database_url=database_url)
    db_a, db_b = Db(open_store(config)), Db(open_store(config))
    try:
        a = Leadership(db_a, "replica-a", ttl_s=60.0)
        alerts, evidence = _alerts(TransparencyLog(db_a.store))

        def leader_alert(leadership: Leadership, chip_id: str) -> Any:
            def write(store: Store) -> None:
                with evidence.leading(), leadership.fenced(store):
                    _raise(alerts, store, chip_id)
            return write

        assert await a.renew()
        await db_a.run(leader_alert(a, "chip-a"))
        assert await db_b.run(Store.log_size) == 1
        # a pauses past its lease; b takes it under a newer token.
        token_b = await db_b.run(Store.acquire_lease, LEADER_LEASE, "replica-b",
                                 time.time_ns() + 61 * _NS, 60 * _NS)
        assert token_b == 2 and a.is_leader
        with pytest.raises(LeaseLostError, match="nothing written"):
            await db_a.run(leader_alert(a, "chip-late"))
        assert await db_b.run(Store.log_size) == 1
        assert await db_b.run(Store.unresolved_alert, "chip", "chip-late", "went_dark") is None
    finally:
        db_a.close()
        db_b.close()


def test_an_alert_outside_the_leader_waits_in_the_queue_with_it(store: Store) -> None:
    """Raised on any replica (ingestion, an operator): queued in the alert's transaction, then
    moved into the log by the leader, chained after the chip's earlier entries."""
    alerts, evidence = _alerts(TransparencyLog(store))
    with evidence.leading():
        _raise(alerts, store, "chip-1")  # the leader: straight into the log
    _raise(alerts, store, "chip-2")
    alerts.auto_resolve(store, AlertType.WENT_DARK, subject_kind="chip", subject_id="chip-1",
                        reason="answered", now_unix_ns=time.time_ns())
    assert store.log_size() == 1 and store.count_queued_evidence() == 2
    # A rolled-back alert leaves no queued evidence either.
    with pytest.raises(LogFailure), store.transaction():
        _raise(alerts, store, "chip-3")
        raise LogFailure("the caller gives up")
    assert store.count_queued_evidence() == 2
    with evidence.leading(), store.transaction():
        assert evidence.drain_queue(store, limit=1) == 1
    with evidence.leading(), store.transaction():
        assert evidence.drain_queue(store) == 0
    entries = [store.log_entry(i) for i in range(store.log_size())]
    assert [(e.chip_id, e.chip_seq) for e in entries if e is not None] == [
        ("chip-1", 0), ("chip-2", 0), ("chip-1", 1)]
    resolved = json.loads(entries[2].entry) if entries[2] is not None else {}
    assert resolved["alert"]["status"] == "resolved" and resolved["chip_seq"] == 1


def test_evidence_off_writes_nothing(store: Store) -> None:
    alerts, evidence = _alerts(None)
    _raise(alerts, store, "chip-1")
    assert store.log_size() == 0 and store.count_queued_evidence() == 0
    assert evidence.drain_queue(store) == 0


def _entry_bytes(i: int) -> Callable[[int, bytes | None], bytes]:
    return lambda seq, prev: f"chip-{i}-{seq}-{prev!r}".encode()


def _old_file_log(path: Path, entries: int) -> tuple[TransparencyLog, SoftwareSigner]:
    """A log as a former PostgreSQL verifier kept it in `<data_dir>/verifier.sqlite3`."""
    log = TransparencyLog(path)
    key = SoftwareSigner.generate()
    for i in range(entries):
        if i % 2:
            log.append(f"plain-{i}".encode(), kind="alert", time_unix_ns=i)
        else:
            log.append_chained(_entry_bytes(i), kind="verdict", chip_id="chip-1",
                               time_unix_ns=i)
        if i % 3 == 2:
            log.sign_tree_head(key, 1000 + i)
    return log, key


def test_an_old_log_file_is_imported_once(tmp_path: Path, store: Store) -> None:
    old, key = _old_file_log(tmp_path / "old" / "verifier.sqlite3", 11)
    assert import_file_log(store, tmp_path / "old" / "verifier.sqlite3") == 11
    log = TransparencyLog(store)
    assert log.size == 11 and log.root() == old.root()
    assert log.tree_heads() == old.tree_heads()
    assert [log.entry(i) for i in range(11)] == [old.entry(i) for i in range(11)]
    assert log.consistency_proof(3, 11) == old.consistency_proof(3, 11)
    # A second start (or a second replica with its own copy of the file): nothing happens.
    assert import_file_log(store, tmp_path / "old" / "verifier.sqlite3") == 0
    # The leader appended since: the database's log still continues the file's.
    log.append_chained(lambda seq, prev: b"after", kind="verdict", chip_id="chip-1",
                       time_unix_ns=99)
    assert import_file_log(store, tmp_path / "old" / "verifier.sqlite3") == 0
    assert log.size == 12 and log.chip_head("chip-1") is not None
    head = log.sign_tree_head(key, 2000)
    head.verify(key.public_key())
    old.close()


def test_another_log_in_the_database_is_refused(tmp_path: Path, store: Store) -> None:
    old, _ = _old_file_log(tmp_path / "old" / "verifier.sqlite3", 4)
    old.close()
    TransparencyLog(store).append(b"a different history", kind="alert")
    with pytest.raises(EvidenceImportError, match="two logs cannot be merged"):
        import_file_log(store, tmp_path / "old" / "verifier.sqlite3")
    assert store.log_size() == 1  # nothing added


def test_a_damaged_old_log_is_refused_and_nothing_imported(tmp_path: Path,
                                                           store: Store) -> None:
    path = tmp_path / "old" / "verifier.sqlite3"
    old, _ = _old_file_log(path, 5)
    old.close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE translog_entries SET entry = x'00' WHERE idx = 3")
    with pytest.raises(EvidenceImportError, match="damaged at entry 3"):
        import_file_log(store, path)
    assert store.log_size() == 0


def test_a_file_without_a_log_imports_nothing(tmp_path: Path, store: Store) -> None:
    path = tmp_path / "empty.sqlite3"
    sqlite3.connect(path).close()
    assert import_file_log(store, path) == 0


@pytest.mark.asyncio
async def test_a_postgresql_verifier_imports_its_old_log_at_start(
        tmp_path: Path, pg_cluster: Any) -> None:
    """The first start of a verifier on PostgreSQL whose data_dir still holds the log file."""
    from tests.verifier.conftest import open_harness

    old, key = _old_file_log(tmp_path / "verifier.sqlite3", 6)
    write_key_file(tmp_path / "log.key", key)  # the key that signed its heads, kept in place
    root = old.root()
    old.close()
    url = pg_cluster.fresh_url()
    try:
        async with open_harness(tmp_path, database_url=url) as h:
            log = h.service.evidence.log
            assert log is not None and log.size == 6 and log.root() == root
    finally:
        pg_cluster.drop(url)


def test_a_replica_with_another_log_key_refuses_to_start(store: Store) -> None:
    """Replicas share the log, so they share its key: a replica whose key file was not deployed
    (it would create a fresh one) must not sign heads beside the others'."""
    log, key = TransparencyLog(store), SoftwareSigner.generate()
    TreeHeadSigner(log, SoftwareSigner.generate(), 10.0)  # no head yet: any key may begin
    log.append(b"entry", kind="alert")
    log.sign_tree_head(key, 1)
    with pytest.raises(ConfigError, match=r"deploy the same log\.key to every replica"):
        TreeHeadSigner(log, SoftwareSigner.generate(), 10.0)
    assert TreeHeadSigner(log, key, 10.0).public_key == key.public_key()
