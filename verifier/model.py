"""Frozen domain values of the verifier (no pydantic here; see verifier/schemas.py)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from geo.assessment import Verdict


class AlertType(StrEnum):
    """Every alert the verifier raises (the API, the dashboard and routing rules use these)."""

    OUTSIDE_LICENSED_REGION = "outside_licensed_region"
    WENT_DARK = "went_dark"
    INCONSISTENT_MEASUREMENTS = "inconsistent_measurements"
    LANDMARK_FAULT = "landmark_fault"
    LANDMARK_SUSPECT = "landmark_suspect"
    SIGNATURE_FAILURE = "signature_failure"
    REPLAY_DETECTED = "replay_detected"
    NOTIFICATION_FAILED = "notification_failed"
    KEY_REFUSED = "key_refused"
    SITE_INCONSISTENT = "site_inconsistent"
    RTT_ANOMALY = "rtt_anomaly"
    PROOF_LOST = "proof_lost"
    GPU_ATTESTATION_FAILED = "gpu_attestation_failed"
    GPU_ATTESTATION_OVERDUE = "gpu_attestation_overdue"


class ChipState(StrEnum):
    """A chip's state: `unknown` until its first verdict, then its latest verdict (`verified`
    expires to `inconclusive` after the policy's TTL). The verdict members are
    `geo.assessment.Verdict`'s (tests/verifier/test_vocabulary.py)."""

    UNKNOWN = "unknown"
    VERIFIED = Verdict.VERIFIED.value
    VIOLATION = Verdict.VIOLATION.value
    INCONCLUSIVE = Verdict.INCONCLUSIVE.value
    INCONSISTENT = Verdict.INCONSISTENT.value
    DARK = Verdict.DARK.value


# The one severity table: every alert type has exactly one severity, which routing rules
# (`min_severity`) and docs/operations.md ("Alert types and severities") use.
SEVERITY_BY_TYPE: dict[str, str] = {
    AlertType.OUTSIDE_LICENSED_REGION: "critical",
    AlertType.REPLAY_DETECTED: "high",
    AlertType.SIGNATURE_FAILURE: "high",
    AlertType.WENT_DARK: "high",
    AlertType.INCONSISTENT_MEASUREMENTS: "medium",
    AlertType.LANDMARK_FAULT: "critical",
    AlertType.LANDMARK_SUSPECT: "low",
    AlertType.NOTIFICATION_FAILED: "high",
    AlertType.KEY_REFUSED: "high",
    # verifier.location_alerts: a relay or a move the geometry alone cannot call a violation
    AlertType.SITE_INCONSISTENT: "high",
    AlertType.RTT_ANOMALY: "high",
    AlertType.PROOF_LOST: "medium",
    AlertType.GPU_ATTESTATION_FAILED: "high",
    AlertType.GPU_ATTESTATION_OVERDUE: "medium",
}


@dataclass(frozen=True, slots=True)
class Token:
    token_id: int
    role: str  # admin | landmark | dashboard
    label: str
    landmark_id: str | None


@dataclass(frozen=True, slots=True)
class Policy:
    name: str
    round_interval_s: float
    landmarks_per_round: int
    round_timeout_s: float
    dark_window_s: float
    # Verdicts that hold if any this many landmarks lie (geo.robust.assess_tolerating).
    tolerate_faulty_landmarks: int = 0
    # How long a `verified` state counts without a new `verified` round; None means
    # round_interval_s + round_timeout_s (the next round's verdict is due by then).
    verified_ttl_s: float | None = None
    # The least key protection (protocol.key_protection) that may earn `verified`; the
    # verifier's config floor raises it (verifier.config.VerifierConfig.min_key_protection).
    min_key_protection: str = "software"

    @property
    def effective_verified_ttl_s(self) -> float:
        if self.verified_ttl_s is not None:
            return self.verified_ttl_s
        return self.round_interval_s + self.round_timeout_s


DEFAULT_POLICY = Policy("default", round_interval_s=300.0, landmarks_per_round=6,
                        round_timeout_s=30.0, dark_window_s=3_600.0)


@dataclass(frozen=True, slots=True)
class Landmark:
    landmark_id: str
    lat_deg: float
    lon_deg: float
    host: str
    port: int
    public_key: bytes
    certificate: dict[str, Any]
    last_seen_unix_ns: int | None
    faulty: bool
    audit: dict[str, Any] | None
    next_mesh_unix_ns: int


@dataclass(frozen=True, slots=True)
class Chip:
    chip_id: str
    owner: str
    model: str
    serial: str
    host: str | None
    port: int | None
    policy: str
    public_key: bytes
    certificate: dict[str, Any]
    licence: dict[str, Any]
    state: str
    state_since_unix_ns: int
    last_response_unix_ns: int | None
    registered_unix_ns: int
    next_round_unix_ns: int


@dataclass(frozen=True, slots=True)
class TaskRow:
    task_id: int
    round_id: str
    landmark_id: str
    target_kind: str
    target_id: str
    host: str
    port: int
    issued_unix_ns: int
    expires_unix_ns: int
    delivered_unix_ns: int | None
    answered: bool


@dataclass(frozen=True, slots=True)
class Round:
    round_id: str
    target_kind: str
    target_id: str
    started_unix_ns: int
    deadline_unix_ns: int


@dataclass(frozen=True, slots=True)
class StoredMeasurement:
    """One accepted, signature-checked measurement ready to be written."""

    batch_id: str
    landmark_id: str
    target_kind: str
    target_id: str
    nonce: bytes
    sent_unix_ns: int
    rtt_ns: int
    clock_source: str
    round_id: str
    task_id: int
    record_json: str  # the exact record as uploaded, for independent re-checking


@dataclass(frozen=True, slots=True)
class MeasurementRow:
    measurement_id: int
    landmark_id: str
    target_kind: str
    target_id: str
    rtt_ns: int
    sent_unix_ns: int
    round_id: str


@dataclass(frozen=True, slots=True)
class VerdictRecord:
    verdict_id: int
    chip_id: str
    round_id: str
    verdict: str
    created_unix_ns: int
    measurement_ids: tuple[int, ...]
    landmarks: tuple[dict[str, Any], ...]
    assessment: dict[str, Any] | None
    reason: str
    licence: dict[str, Any]
    reason_code: str | None = None  # machine-readable, e.g. "untrusted_key"; None when plain
    key_protection: str = "software"  # the chip certificate's level when the round was decided


@dataclass(frozen=True, slots=True)
class Alert:
    alert_id: int
    type: str
    severity: str
    status: str  # open | acknowledged | resolved
    subject_kind: str  # chip | landmark
    subject_id: str
    message: str
    details: dict[str, Any]
    opened_unix_ns: int
    updated_unix_ns: int
    acknowledged_by: str | None
    acknowledged_reason: str | None
    acknowledged_unix_ns: int | None
    resolved_by: str | None
    resolved_reason: str | None
    resolved_unix_ns: int | None
    # The mute rule that silenced this alert's notifications (it is still recorded and logged).
    muted_by_rule: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The one JSON shape of an alert: REST, SSE, webhooks and notification channels."""
        return asdict(self)


@dataclass(frozen=True, slots=True)
class AlertFilter:
    status: str | None = None
    type: str | None = None
    subject_kind: str | None = None
    subject_id: str | None = None
    severity: str | None = None
    before_id: int | None = None  # cursor: only alerts with a smaller id
    limit: int = 100


@dataclass(frozen=True, slots=True)
class OutboxItem:
    outbox_id: int
    url: str
    body: bytes
    attempts: int
