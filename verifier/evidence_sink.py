"""Appends verdicts and alerts to the tamper-evident evidence log (docs/evidence.md).

The log is part of the verifier's database (`verifier.store.evidence_log`), so an entry is
written in the same transaction as what it records: a verdict and its entry (an alert and its
entry) commit together or not at all, and a kill -9 at any point leaves both or neither.

Only the leader appends, inside its fenced transactions (`leading`, `verifier.lease`): a paused
old leader's transaction finds a newer token and writes nothing, its entries included, so the
log stays one sequence. An alert raised outside those transactions (ingestion, an operator's
acknowledgement, on any replica) writes its evidence to `evidence_queue` in the alert's own
transaction instead; the leader moves queued records into the log, oldest first, each with the
removal of its queue row in one transaction (`drain_queue`, every tick). A record that cannot be
built (a bug: retrying cannot help) is logged and skipped; its verdict or alert is still stored.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from verifier.config import VerifierConfig
    from verifier.evidence import EvidenceRecord
    from verifier.store import Store
    from verifier.translog import TransparencyLog

logger = logging.getLogger(__name__)

DRAIN_BATCH = 500  # queued records moved per tick (in the tick's fenced transaction)


class EvidenceSink:
    def __init__(self, log: TransparencyLog | None, ca_public_key: bytes) -> None:
        """``log``: the log's read connection (exports, tree heads); None turns evidence off."""
        self._ca_public_key = ca_public_key
        self._log = log
        self._leading = threading.local()  # per database thread: inside a fenced transaction

    @property
    def enabled(self) -> bool:
        return self._log is not None

    @property
    def log(self) -> TransparencyLog | None:
        """The log's own connection (None when evidence is off): for tree heads and exports."""
        return self._log

    @contextmanager
    def leading(self) -> Iterator[None]:
        """Mark the calling thread's block as one fenced leader transaction: entries made in it
        go straight into the log, in that transaction (wrap inside `Leadership.fenced`'s
        caller, around it)."""
        depth = getattr(self._leading, "depth", 0)
        self._leading.depth = depth + 1
        try:
            yield
        finally:
            self._leading.depth = depth

    def _is_leading(self) -> bool:
        return bool(getattr(self._leading, "depth", 0))

    def verdict(self, store: Store, *, chip_id: str, round_id: str, decided_unix_ns: int,
                verdict: str, chip_certificate: dict[str, Any],
                landmark_certificates: Sequence[dict[str, Any]], records: Sequence[Any],
                inputs: Sequence[Any], licence: dict[str, Any], params: Any,
                calibration: dict[str, Any] | None, assessment: Any, policy: dict[str, Any],
                key_protection: str = "software", reason_code: str | None = None,
                revocations: Sequence[dict[str, Any]] = ()) -> int | None:
        """Append the verdict's evidence in ``store``'s open transaction; its log index, or
        None when evidence is off, the record could not be built, or it was queued."""
        if self._log is None:
            return None
        from verifier.evidence import build_evidence

        try:
            record = build_evidence(
                chip_id=chip_id, round_id=round_id, decided_unix_ns=decided_unix_ns,
                verdict=verdict, chip_certificate=chip_certificate,
                landmark_certificates=list(landmark_certificates), records=list(records),
                inputs=list(inputs), licence=licence, params=params, calibration=calibration,
                assessment=assessment, policy=policy, ca_public_key=self._ca_public_key,
                key_protection=key_protection, reason_code=reason_code,
                revocations=revocations)
        except Exception:  # a bug in building it: retrying cannot help
            logger.exception("evidence for chip %s round %s could not be built", chip_id,
                             round_id)
            return None
        return self._write(store, record)

    def alert(self, store: Store, alert: dict[str, Any], *, chip_id: str | None,
              time_unix_ns: int) -> None:
        """Append (or queue) the alert's evidence in ``store``'s open transaction."""
        if self._log is None:
            return
        from verifier.evidence import build_alert_evidence

        try:
            record = build_alert_evidence(alert, chip_id=chip_id, time_unix_ns=time_unix_ns)
        except Exception:
            logger.exception("evidence for alert %s could not be built", alert.get("alert_id"))
            return
        self._write(store, record)

    def _write(self, store: Store, record: EvidenceRecord) -> int | None:
        if self._is_leading():
            return _append(store, record)
        store.queue_evidence(record.kind, record.chip_id, record.time_unix_ns,
                             record.canonical_bytes().decode())
        logger.debug("evidence %s for chip %s queued for the leader", record.kind,
                     record.chip_id)
        return None

    def close(self) -> None:
        if self._log is not None:
            self._log.close()

    def drain_queue(self, store: Store, limit: int = DRAIN_BATCH) -> int:
        """Leader only (inside `leading` and its fence): move up to ``limit`` queued records
        into the log, oldest first; how many are still waiting."""
        if self._log is None:
            return 0
        from verifier.evidence import EvidenceRecord

        for queued in store.queued_evidence(limit):
            body: Mapping[str, Any] = json.loads(queued.body)
            with store.transaction():
                _append(store, EvidenceRecord(queued.kind, queued.chip_id, queued.time_unix_ns,
                                              body))
                store.drop_queued_evidence(queued.queue_id)
        return store.count_queued_evidence()


def _append(store: Store, record: EvidenceRecord) -> int:
    from verifier.evidence import append_evidence
    from verifier.translog import TransparencyLog

    return append_evidence(TransparencyLog(store), record)


def open_evidence(config: VerifierConfig, ca_public_key: bytes) -> EvidenceSink:
    """The verifier's sink: the log's tables on a connection of their own (exports and tree
    heads must not queue behind the database thread's work), after importing a log that a
    PostgreSQL verifier's earlier version kept in `<data_dir>/verifier.sqlite3`."""
    if not config.evidence:
        return EvidenceSink(None, ca_public_key)
    from verifier.evidence_import import import_file_log
    from verifier.store import open_store
    from verifier.translog import TransparencyLog

    log = TransparencyLog(open_store(config), owns_store=True)
    try:
        if config.database_url and config.db_path.exists():
            import_file_log(log.store, config.db_path)
    except BaseException:
        log.close()
        raise
    return EvidenceSink(log, ca_public_key)
