"""Domain values → API schema objects (the HTTP edge)."""

from __future__ import annotations

import base64

from geo.assessment import Verdict
from geo.decision import ReasonCode
from protocol.key_protection import stronger
from verifier import schemas
from verifier.keylevels import chip_key_protection
from verifier.model import Alert, Chip, ChipState, Landmark, Policy, TaskRow, VerdictRecord
from verifier.ops_model import Membership
from verifier.scheduler import landmark_health


def policy_out(p: Policy, floor: str) -> schemas.PolicyOut:
    return schemas.PolicyOut(name=p.name, round_interval_s=p.round_interval_s,
                             landmarks_per_round=p.landmarks_per_round,
                             round_timeout_s=p.round_timeout_s, dark_window_s=p.dark_window_s,
                             tolerate_faulty_landmarks=p.tolerate_faulty_landmarks,
                             verified_ttl_s=p.verified_ttl_s,
                             min_key_protection=p.min_key_protection,  # type: ignore[arg-type]
                             effective_min_key_protection=stronger(  # type: ignore[arg-type]
                                 p.min_key_protection, floor),
                             **p.alert_margins)


def landmark_out(lm: Landmark, now_unix_ns: int, dead_after_s: float) -> schemas.LandmarkOut:
    audit = (schemas.AuditOut(status=str(lm.audit.get("status", "unknown")),
                              evidence=list(lm.audit.get("evidence", [])),
                              suspect_windows=int(lm.audit.get("suspect_windows", 0)))
             if lm.audit else None)
    return schemas.LandmarkOut(
        landmark_id=lm.landmark_id, lat_deg=lm.lat_deg, lon_deg=lm.lon_deg, host=lm.host,
        port=lm.port, public_key_b64=base64.b64encode(lm.public_key).decode(),
        health=landmark_health(lm, now_unix_ns, dead_after_s),  # type: ignore[arg-type]
        last_seen_unix_ns=lm.last_seen_unix_ns, audit=audit)


def verdict_out(v: VerdictRecord) -> schemas.VerdictOut:
    return schemas.VerdictOut(
        verdict_id=v.verdict_id, chip_id=v.chip_id, round_id=v.round_id,
        verdict=Verdict(v.verdict),
        created_unix_ns=v.created_unix_ns, measurement_ids=list(v.measurement_ids),
        landmarks=[schemas.LandmarkRttOut(**row) for row in v.landmarks],
        assessment=v.assessment, reason=v.reason,
        reason_code=None if v.reason_code is None else ReasonCode(v.reason_code),
        key_protection=v.key_protection,  # type: ignore[arg-type]
        licence=v.licence)


def chip_out(c: Chip, last: VerdictRecord | None,
             membership: Membership | None = None) -> schemas.ChipOut:
    return schemas.ChipOut(
        zone_id=membership.zone_id if membership else None,
        groups=list(membership.groups) if membership else [],
        chip_id=c.chip_id, owner=c.owner, model=c.model, serial=c.serial, host=c.host,
        port=c.port, policy=c.policy,
        key_protection=chip_key_protection(c),  # type: ignore[arg-type]
        licence=c.licence,
        state=ChipState(c.state),
        state_since_unix_ns=c.state_since_unix_ns,
        last_response_unix_ns=c.last_response_unix_ns,
        last_verdict=verdict_out(last) if last else None)


def alert_out(a: Alert) -> schemas.AlertOut:
    return schemas.AlertOut.model_validate(
        {k: getattr(a, k) for k in schemas.AlertOut.model_fields})


def task_out(t: TaskRow) -> schemas.TaskOut:
    return schemas.TaskOut(task_id=t.task_id, round_id=t.round_id,
                           target_kind=t.target_kind,  # type: ignore[arg-type]
                           target_id=t.target_id, host=t.host, port=t.port,
                           issued_unix_ns=t.issued_unix_ns, expires_unix_ns=t.expires_unix_ns)
