"""Frozen domain values of the verifier (no pydantic here; see verifier/schemas.py)."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from geo.assessment import Verdict
from verifier.errors import InvalidInputError


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
    RTT_ABOVE_BASELINE = "rtt_above_baseline"
    PROOF_LOST = "proof_lost"
    GPU_ATTESTATION_FAILED = "gpu_attestation_failed"
    GPU_ATTESTATION_OVERDUE = "gpu_attestation_overdue"


# The alerts that say where a chip is not (verifier/location_alerts.py, docs/verifier.md
# "Location alerts"): a relay or a move the geometry alone cannot call a violation.
LOCATION_ALERT_TYPES = frozenset({AlertType.SITE_INCONSISTENT, AlertType.RTT_ANOMALY,
                                  AlertType.RTT_ABOVE_BASELINE, AlertType.PROOF_LOST})


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
    AlertType.RTT_ABOVE_BASELINE: "high",
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


# The location alerts' policy fields: (lower bound, lower bound allowed, upper bound). The HTTP
# schema (verifier.schemas.PolicyIn) states the same bounds from this table.
ALERT_FIELD_BOUNDS: dict[str, tuple[float, bool, float]] = {
    "rtt_margin_ms": (0.0, False, 1_000.0),
    "anomaly_rounds": (1, True, 100),
    "proof_lost_rounds": (1, True, 10_000),
    "proof_lost_min_s": (0.0, True, 86_400.0 * 30),
    "site_slack_km": (0.0, True, 100.0),
    "baseline_rounds": (1, True, 1_000),
}
_INTEGER_ALERT_FIELDS = frozenset({"anomaly_rounds", "proof_lost_rounds", "baseline_rounds"})


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
    # The location alerts' margins (verifier.location_alerts; docs/verifier.md, "Location
    # alerts"); every alert's details repeat the ones its rule used.
    rtt_margin_ms: float = 10.0  # RTT above the site's or the baseline's explanation
    anomaly_rounds: int = 3  # answered rounds in a row above it before rtt alerts fire
    proof_lost_rounds: int = 10  # round intervals without `verified` before proof_lost ...
    proof_lost_min_s: float = 300.0  # ... and at least this long
    site_slack_km: float = 2.0  # a campus, and the declared coordinates' rounding
    baseline_rounds: int = 12  # answered rounds a landmark's learned baseline needs to judge

    def __post_init__(self) -> None:
        for name, (low, low_inclusive, high) in ALERT_FIELD_BOUNDS.items():
            value: float = getattr(self, name)
            where = f"policy {self.name!r}: {name}"
            integral = name in _INTEGER_ALERT_FIELDS
            kinds: tuple[type, ...] = (int,) if integral else (int, float)
            if isinstance(value, bool) or not isinstance(value, kinds):
                kind = "an integer" if integral else "a number"
                raise InvalidInputError(f"{where} must be {kind}, got {value!r}")
            above = value >= low if low_inclusive else value > low
            if not (math.isfinite(value) and above and value <= high):
                bound = f"{'>=' if low_inclusive else '>'} {low:g} and <= {high:g}"
                raise InvalidInputError(f"{where} must be {bound}, got {value}")

    @property
    def alert_margins(self) -> dict[str, Any]:
        """The margins the location alerts apply, as written into every such alert's details."""
        return {name: getattr(self, name) for name in ALERT_FIELD_BOUNDS}

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
class RttBaseline:
    """A chip's learned best RTT to one landmark (verifier.rtt_baseline): the least RTT of
    `rounds` answered rounds since `since_unix_ns`, measured while the landmark stood at
    (lat_deg, lon_deg)."""

    chip_id: str
    landmark_id: str
    lat_deg: float
    lon_deg: float
    best_rtt_ms: float
    rounds: int
    since_unix_ns: int
    updated_unix_ns: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


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
