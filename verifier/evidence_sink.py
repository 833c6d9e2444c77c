"""Appends verdicts and alerts to the tamper-evident evidence log (docs/evidence.md).

Called on the database thread right after the verdict or alert is committed; the log has its
own durable connection. A failed append never loses the verdict itself, and its evidence is not
dropped either: the entry waits in order in `pending` (later entries queue behind it, so each
chip's chain keeps its order) and `flush_pending`, called every tick, retries from the oldest.
Pending entries live in memory: a crash while the log is failing loses them (the verdicts stay
in the verifier's database), which the log's own durability makes the rare case.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from verifier.evidence import EvidenceRecord
    from verifier.translog import TransparencyLog

logger = logging.getLogger(__name__)


class EvidenceSink:
    def __init__(self, db_path: Path | None, ca_public_key: bytes) -> None:
        self._ca_public_key = ca_public_key
        self._log: Any = None
        self._pending: deque[EvidenceRecord] = deque()  # oldest first, never reordered
        self._holding = 0  # > 0: inside held(), entries wait for the block to end
        if db_path is not None:
            from verifier.translog import TransparencyLog

            self._log = TransparencyLog(db_path)

    @property
    def enabled(self) -> bool:
        return self._log is not None

    @property
    def log(self) -> TransparencyLog | None:
        """The log itself (None when evidence is off): for tree heads and exports."""
        log: TransparencyLog | None = self._log
        return log

    def verdict(self, *, chip_id: str, round_id: str, decided_unix_ns: int, verdict: str,
                chip_certificate: dict[str, Any], landmark_certificates: Sequence[dict[str, Any]],
                records: Sequence[Any], inputs: Sequence[Any], licence: dict[str, Any],
                params: Any, calibration: dict[str, Any] | None, assessment: Any,
                policy: dict[str, Any], key_protection: str = "software",
                reason_code: str | None = None,
                revocations: Sequence[dict[str, Any]] = ()) -> int | None:
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
        return self._append(record)

    def alert(self, alert: dict[str, Any], *, chip_id: str | None, time_unix_ns: int) -> None:
        if self._log is None:
            return
        from verifier.evidence import build_alert_evidence

        try:
            record = build_alert_evidence(alert, chip_id=chip_id, time_unix_ns=time_unix_ns)
        except Exception:
            logger.exception("evidence for alert %s could not be built", alert.get("alert_id"))
            return
        self._append(record)

    @contextmanager
    def held(self) -> Iterator[None]:
        """Queue the entries made inside and append them when the block ends without error; an
        error drops them. Wrap a store transaction in this so the log never holds an entry whose
        verdict was rolled back (a fenced leader write, verifier.lease), and so the log's own
        write transaction never waits on the store's open one (both may be one SQLite file)."""
        mark = len(self._pending)
        self._holding += 1
        try:
            yield
        except BaseException:
            while len(self._pending) > mark:
                self._pending.pop()
            raise
        finally:
            self._holding -= 1
        if not self._holding:
            self._flush()

    def _append(self, record: EvidenceRecord) -> int | None:
        """Queue `record` behind any waiting entry and flush; its log index when it went in."""
        self._pending.append(record)
        if self._holding:
            return None
        last = self._flush()
        return None if self._pending else last

    def flush_pending(self) -> int:
        """Append waiting entries oldest first, stopping at the first failure; how many are
        still waiting."""
        self._flush()
        return len(self._pending)

    def _flush(self) -> int | None:
        from verifier.evidence import append_evidence

        last = None
        while self._pending:
            record = self._pending[0]
            try:
                last = int(append_evidence(self._log, record))
            except Exception:
                logger.exception("evidence log append failed (%s for chip %s); %d entries kept "
                                 "pending, retried next tick", record.kind, record.chip_id,
                                 len(self._pending))
                break
            self._pending.popleft()
        return last

    def close(self) -> None:
        if self._log is not None:
            if self.flush_pending():
                logger.error("%d evidence entries could not be appended before shutdown and "
                             "are lost (their verdicts and alerts are in the database)",
                             len(self._pending))
            self._log.close()
