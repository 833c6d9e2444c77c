"""Pydantic models for the verifier HTTP API (the only place pydantic is used).

These shapes are the contract the dashboard and landmarks code against; docs/CONTRACTS.md
("verifier HTTP API") describes the same thing in prose. Domain code works with the frozen
dataclasses in `verifier.model`; routes convert at the edge.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from audit.parameters import MAX_RECORD_AGE_S, VERDICT_MARGIN_S
from geo.assessment import Verdict
from geo.decision import ReasonCode
from verifier.model import ALERT_FIELD_BOUNDS, DEFAULT_POLICY, AlertType, ChipState

Id = str
ID_PATTERN = r"^[A-Za-z0-9._-]{1,64}$"
Role = Literal["viewer", "auditor", "operator", "admin", "landmark", "dashboard"]
# Verdict, ReasonCode (geo) and AlertType, ChipState (verifier.model) are the vocabulary's one
# definition; pydantic validates and documents them as enums of their values.
AlertStatus = Literal["open", "acknowledged", "resolved"]
Severity = Literal["critical", "high", "medium", "low"]
LandmarkHealth = Literal["unknown", "alive", "dead", "faulty"]
KeyProtection = Literal["software", "tee-bound", "gpu-attested"]  # protocol.key_protection


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ---- admin inputs -------------------------------------------------------------------------


class LandmarkIn(_In):
    """Register (or re-register) a landmark; id, key and position come from the certificate."""

    certificate: dict[str, Any] = Field(description="LandmarkCertificate.to_json(), CA-signed")
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(ge=1, le=65535)


class ChipIn(_In):
    """Enrol a chip; id and key come from its vendor-CA-signed certificate."""

    certificate: dict[str, Any] = Field(description="ChipCertificate.to_json(), CA-signed")
    owner: str = Field(min_length=1, max_length=200)
    host: str | None = Field(default=None, max_length=253, description="agent endpoint host")
    port: int | None = Field(default=None, ge=1, le=65535)
    licence: dict[str, Any] = Field(description="geo.licence.licence_from_json input")
    policy: str = Field(default="default", pattern=ID_PATTERN)


class ChipsBulkIn(_In):
    """Enrol many chips in one request and one transaction: all of them, or none."""

    chips: list[ChipIn] = Field(min_length=1, max_length=1_000)


class ChipsBulkOut(_Out):
    enrolled: int
    chip_ids: list[str]


class LicenceIn(_In):
    licence: dict[str, Any]


def _alert_margin(name: str, description: str) -> Any:
    """A location-alert policy field: the default policy's value, the bounds `Policy` checks."""
    low, low_allowed, high = ALERT_FIELD_BOUNDS[name]
    return Field(default=getattr(DEFAULT_POLICY, name), description=description,
                 ge=low if low_allowed else None, gt=None if low_allowed else low, le=high)


class SiteIn(_In):
    """The data centre a chip is licensed at (`licence.site`, docs/verifier.md)."""

    lat_deg: float = Field(ge=-90.0, le=90.0, allow_inf_nan=False)
    lon_deg: float = Field(ge=-180.0, le=180.0, allow_inf_nan=False)


class PolicyIn(_In):
    round_interval_s: float = Field(gt=0, le=86_400 * 7)
    landmarks_per_round: int = Field(ge=1, le=64)
    round_timeout_s: float = Field(
        gt=0, le=MAX_RECORD_AGE_S - VERDICT_MARGIN_S,
        description="a round open longer would decide on answers the audit calls stale")
    dark_window_s: float = Field(gt=0, le=86_400 * 30)
    tolerate_faulty_landmarks: int = Field(
        default=0, ge=0, le=2,
        description="verdicts hold if any this many landmarks lie (docs/verifier.md)")
    verified_ttl_s: float | None = Field(
        default=None, gt=0, le=86_400 * 30,
        description="how long `verified` counts without a new verified round; "
        "null: round_interval_s + round_timeout_s")
    min_key_protection: KeyProtection = Field(
        default="software",
        description="least chip key protection that may earn `verified`; the verifier's "
        "config floor (min_key_protection) raises it (docs/protocol.md, key provenance)")
    # location alerts (docs/verifier.md, "Location alerts")
    rtt_margin_ms: float = _alert_margin(
        "rtt_margin_ms", "rtt_anomaly / rtt_above_baseline: ms above what the declared site or "
        "the learned baseline explains")
    anomaly_rounds: int = _alert_margin(
        "anomaly_rounds", "answered rounds in a row above the margin before those alerts fire")
    proof_lost_rounds: int = _alert_margin(
        "proof_lost_rounds", "proof_lost: round intervals without `verified`")
    proof_lost_min_s: float = _alert_margin(
        "proof_lost_min_s", "proof_lost: and at least this many seconds")
    site_slack_km: float = _alert_margin(
        "site_slack_km", "site_inconsistent: the declared site is grown by this much")
    baseline_rounds: int = _alert_margin(
        "baseline_rounds", "rtt_above_baseline: answered rounds a landmark's learned baseline "
        "needs before it judges")

    @model_validator(mode="after")
    def _enough_landmarks(self) -> PolicyIn:
        # Each verdict asks every subset that leaves out f landmarks, and each needs two. With
        # f = 0 a one-landmark round is allowed: it measures, and decides inconclusive.
        needed = self.tolerate_faulty_landmarks + 2
        if self.tolerate_faulty_landmarks and self.landmarks_per_round < needed:
            raise ValueError(
                f"tolerate_faulty_landmarks={self.tolerate_faulty_landmarks} needs "
                f"landmarks_per_round >= {needed}, got {self.landmarks_per_round}")
        return self


class TokenIn(_In):
    role: Role
    label: str = Field(min_length=1, max_length=100, description="who holds it; shown as `by`")
    landmark_id: str | None = Field(default=None, pattern=ID_PATTERN)
    expires_unix_ns: int | None = Field(
        default=None, gt=0, le=2**62,
        description="the token stops working at this time (401 `bearer token expired`)")


class TokenDisableIn(_In):
    reason: str = Field(min_length=1, max_length=2_000)


class RevocationIn(_In):
    kind: Literal["landmark", "chip"]
    match: Literal["id", "public_key", "serial"] = Field(
        description="id: every key of that landmark or chip; public_key: that key only; "
        "serial: the chip certificate with that serial")
    value: str = Field(min_length=1, max_length=200)
    reason: str = Field(min_length=1, max_length=2_000)


class AlertActionIn(_In):
    reason: str = Field(min_length=1, max_length=2_000)


# ---- outputs ------------------------------------------------------------------------------


class TokenOut(_Out):
    token_id: int
    role: Role
    label: str
    landmark_id: str | None
    token: str = Field(description="shown once; only its SHA-256 is stored")
    expires_unix_ns: int | None = None


class TokenInfoOut(_Out):
    token_id: int
    role: str
    label: str
    landmark_id: str | None
    created_unix_ns: int
    expires_unix_ns: int | None
    disabled_unix_ns: int | None
    disabled_by: str | None
    disabled_reason: str | None


class TokensOut(_Out):
    items: list[TokenInfoOut]


class RevocationOut(_Out):
    kind: Literal["landmark", "chip"]
    match: Literal["id", "public_key", "serial"]
    value: str
    revoked_unix_ns: int
    reason: str


class RevocationsOut(_Out):
    items: list[RevocationOut]


class PolicyOut(_Out):
    name: str
    round_interval_s: float
    landmarks_per_round: int
    round_timeout_s: float
    dark_window_s: float
    tolerate_faulty_landmarks: int
    verified_ttl_s: float | None
    min_key_protection: KeyProtection
    rtt_margin_ms: float
    anomaly_rounds: int
    proof_lost_rounds: int
    proof_lost_min_s: float
    site_slack_km: float
    baseline_rounds: int
    effective_min_key_protection: KeyProtection = Field(
        description="what verdicts apply: the stricter of the policy's and the config floor")


class AuditOut(_Out):
    status: str
    evidence: list[Any]
    suspect_windows: int = 0  # consecutive mesh windows `suspect` (a warning from 2 on)


class LandmarkOut(_Out):
    landmark_id: str
    lat_deg: float
    lon_deg: float
    host: str
    port: int
    public_key_b64: str
    health: LandmarkHealth
    last_seen_unix_ns: int | None
    audit: AuditOut | None


class LandmarkRttOut(_Out):
    landmark_id: str
    lat_deg: float
    lon_deg: float
    rtt_ms: float
    measurement_id: int


class VocabularyOut(_Out):
    verdicts: list[Verdict]
    chip_states: list[ChipState]
    reason_codes: list[ReasonCode]
    alert_types: list[AlertType]


class VerdictOut(_Out):
    verdict_id: int
    chip_id: str
    round_id: str
    verdict: Verdict
    created_unix_ns: int
    measurement_ids: list[int]
    landmarks: list[LandmarkRttOut]
    assessment: dict[str, Any] | None = Field(
        description="geo Assessment.to_json(): GeoJSON regions, estimate, excluded landmarks; "
        "null for dark"
    )
    reason: str
    reason_code: ReasonCode | None = Field(
        default=None, description="machine-readable reason; untrusted_key: the chip's key "
        "protection is below the policy minimum, so the round cannot be verified; no_answer: "
        "the round closed without one valid signed answer; verdict_error: deciding it failed "
        "(a bug; logged), never a pass")
    key_protection: KeyProtection = Field(
        description="the chip key's protection when decided; software: the host owner could "
        "copy the key")
    licence: dict[str, Any]


class ChipOut(_Out):
    chip_id: str
    owner: str
    model: str
    serial: str
    host: str | None
    port: int | None
    policy: str
    key_protection: KeyProtection = Field(description="stated in the CA-signed certificate")
    licence: dict[str, Any]
    state: ChipState
    state_since_unix_ns: int
    last_response_unix_ns: int | None
    last_verdict: VerdictOut | None
    zone_id: str | None = None
    groups: list[str] = []


class SiteOut(_Out):
    chip: ChipOut
    baseline_rows_reset: int = Field(
        description="learned RTT baseline rows forgotten (a new site is a declared move)")


class RttBaselineOut(_Out):
    landmark_id: str
    lat_deg: float
    lon_deg: float
    best_rtt_ms: float
    rounds: int
    since_unix_ns: int
    updated_unix_ns: int


class RttBaselinesOut(_Out):
    chip_id: str
    baseline_rounds: int = Field(description="rounds a landmark's baseline needs to judge "
                                 "(the chip's policy)")
    items: list[RttBaselineOut]


class BaselineResetOut(_Out):
    chip_id: str
    baseline_rows_reset: int


class AlertOut(_Out):
    alert_id: int
    type: AlertType
    severity: Severity
    status: AlertStatus
    subject_kind: Literal["chip", "landmark", "channel"]
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
    muted_by_rule: int | None = None


class TaskOut(_Out):
    task_id: int
    round_id: str
    target_kind: Literal["chip", "landmark"]
    target_id: str
    host: str
    port: int
    issued_unix_ns: int
    expires_unix_ns: int


class TasksOut(_Out):
    tasks: list[TaskOut]


class Rejection(_Out):
    index: int
    reason: str


class IngestOut(_Out):
    batch_id: str
    accepted: int
    rejected: list[Rejection]
    duplicate: bool = Field(description="true when this batch id was already ingested")


class ChipsOut(_Out):
    items: list[ChipOut]
    next_cursor: str | None = None  # pass as `cursor` for the next page; None: last page


class LandmarksOut(_Out):
    items: list[LandmarkOut]
    next_cursor: str | None = None  # pass as `cursor` for the next page; None: last page


class PoliciesOut(_Out):
    items: list[PolicyOut]


class VerdictsOut(_Out):
    items: list[VerdictOut]
    next_cursor: str | None


class AlertsOut(_Out):
    items: list[AlertOut]
    next_cursor: str | None


class MeOut(_Out):
    role: Role
    label: str
    landmark_id: str | None


class StatsOut(_Out):
    measurements_accepted_total: int
    measurements_rejected_by_reason: dict[str, int]
    batches_total: int
    open_alerts: int


class HealthOut(_Out):
    status: Literal["ok"]
    version: str


# ---- GPU attestation (verifier/attestation.py) ---------------------------------------------


class AttestationChallengeOut(_Out):
    chip_id: str
    nonce_b64: str = Field(description="32 random bytes; the GPU signs "
                           "SHA-256('lightfence/gpu-attestation-nonce/v1\\0' || nonce || chip key)")
    expires_unix_ns: int


class AttestationIn(_In):
    """NVML's evidence for the outstanding challenge."""

    nonce_b64: str = Field(max_length=64)
    report_b64: str = Field(max_length=16_384, description="nvmlDeviceGetConfComputeGpu"
                            "AttestationReport: attestationReport[:attestationReportSize]")
    cert_chain_pem: str = Field(max_length=16_384, description="nvmlDeviceGetConfComputeGpu"
                                "Certificate: attestationCertChain[:attestationCertChainSize]")


class AttestationOut(_Out):
    chip_id: str
    gpu_id: str = Field(description="subject serialNumber of the GPU's device-identity cert")
    enrolled_unix_ns: int
    last_attested_unix_ns: int
    driver_version: str | None
    project: str | None
    chain_sha256: list[str]
    key_protection: KeyProtection = Field(
        description="unchanged by attestation: a host-held key it vouched for is still software")
