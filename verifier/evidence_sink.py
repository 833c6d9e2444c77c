"""Appends verdicts and alerts to the tamper-evident evidence log (docs/evidence.md).

Called on the database thread right after the verdict or alert is committed; the log has its
own durable connection. A log failure is logged loudly but never loses the verdict itself.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from verifier.translog import TransparencyLog

logger = logging.getLogger(__name__)


class EvidenceSink:
    def __init__(self, db_path: Path | None, ca_public_key: bytes) -> None:
        self._ca_public_key = ca_public_key
        self._log: Any = None
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
        from verifier.evidence import append_evidence, build_evidence

        try:
            record = build_evidence(
                chip_id=chip_id, round_id=round_id, decided_unix_ns=decided_unix_ns,
                verdict=verdict, chip_certificate=chip_certificate,
                landmark_certificates=list(landmark_certificates), records=list(records),
                inputs=list(inputs), licence=licence, params=params, calibration=calibration,
                assessment=assessment, policy=policy, ca_public_key=self._ca_public_key,
                key_protection=key_protection, reason_code=reason_code,
                revocations=revocations)
            return int(append_evidence(self._log, record))
        except Exception:
            logger.exception("evidence log append failed for chip %s round %s", chip_id, round_id)
            return None

    def alert(self, alert: dict[str, Any], *, chip_id: str | None, time_unix_ns: int) -> None:
        if self._log is None:
            return
        from verifier.evidence import append_evidence, build_alert_evidence

        try:
            append_evidence(self._log, build_alert_evidence(alert, chip_id=chip_id,
                                                            time_unix_ns=time_unix_ns))
        except Exception:
            logger.exception("evidence log append failed for alert %s", alert.get("alert_id"))

    def close(self) -> None:
        if self._log is not None:
            self._log.close()
