"""Closing rounds: geo verdicts for chip rounds, dark detection, landmark faults, calibration.

Three steps so the heavy geometry never runs on the database thread: `collect` (database
thread) gathers the round's best RTT per landmark; `decide` (worker thread) applies the
decision rule `geo.decision.decide` (the one the audit recomputes) with the policy's
`tolerate_faulty_landmarks` and key minimum, adding what only the verifier knows (`dark`, a
crash while deciding) and the human-readable reason; `record` (database thread) stores the
verdict with the exact measurement ids, moves the chip's state and raises or clears alerts.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from audit.parameters import VERDICT_MARGIN_S, record_too_old
from geo.assess_batch import assess_many
from geo.assessment import Assessment, SolverParams, Verdict
from geo.audit import audit_landmarks
from geo.calibration import CalibrationModel, CalibrationSample
from geo.decision import Decision as Ruling
from geo.decision import ReasonCode, conclude
from geo.decision import decide as rule
from geo.errors import GeoError
from geo.geodesy import distance_km
from geo.licence import Licence, licence_from_json
from geo.measurement import LandmarkRtt
from protocol.errors import ProtocolError, WireError
from protocol.key_protection import meets, stronger
from protocol.records import MeasurementRecord, verify_record
from protocol.revocation import Revocation, RevocationIndex
from verifier import location_alerts
from verifier.alerts import Alerts
from verifier.errors import ConflictError
from verifier.evidence_sink import EvidenceSink
from verifier.keylevels import chip_key_protection
from verifier.metrics import Metrics
from verifier.model import DEFAULT_POLICY, AlertType, Chip, Landmark, Policy, Round, VerdictRecord
from verifier.revocations import KeyInfo, concerning, key_info, refusal, untrusted_alert
from verifier.store import Store

logger = logging.getLogger(__name__)

_NS = 1_000_000_000
# The audit's record-age limit holds at the verdict's time, stamped after the solver ran.
_MARGIN_NS = int(VERDICT_MARGIN_S * _NS)
CALIBRATION_KEY = "calibration_model"
SUSPECT_WINDOWS = 2
"""A `suspect` audit becomes a `landmark_suspect` warning only after this many consecutive mesh
windows: one window of congestion or a rerouted cable must not page anyone."""
# The reason of a round that closed without one valid signed answer (its code comes first).
NO_ANSWER_REASON = "no_answer: no valid signed answer in this round"
ALERT_FOR_VERDICT = {Verdict.VIOLATION: AlertType.OUTSIDE_LICENSED_REGION,
                     Verdict.INCONSISTENT: AlertType.INCONSISTENT_MEASUREMENTS,
                     Verdict.DARK: AlertType.WENT_DARK}


class RoundClosedError(ConflictError):
    """The round was closed after its inputs were collected: it already has its verdict."""


@dataclass(frozen=True, slots=True)
class RoundInputs:
    round: Round
    chip: Chip
    policy: Policy
    rtts: tuple[LandmarkRtt, ...]
    measurement_ids: tuple[int, ...]
    landmarks: tuple[Landmark, ...]
    records: tuple[MeasurementRecord, ...]
    calibration: dict[str, Any] | None
    dark: bool  # no answer in this round and none within the policy's dark window
    key_protection: str = "software"  # the chip certificate's level (protocol.key_protection)
    # Revocations in force that name the chip or a landmark of the round (for the evidence).
    revocations: tuple[Revocation, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    inputs: RoundInputs
    verdict: Verdict
    assessment: Assessment | None
    reason: str
    reason_code: ReasonCode | None = None


@dataclass(frozen=True, slots=True)
class _Checked:
    chosen: list[tuple[Landmark, int, MeasurementRecord]]
    keys: list[tuple[str, str, KeyInfo]]  # every key the round's records lean on


def _checked_best(store: Store, rnd: Round, chip: Chip, alerts: Alerts, *,
                  revoked: RevocationIndex, now_unix_ns: int) -> _Checked:
    """Per landmark, the smallest-RTT measurement whose stored record passes the full
    `verify_record` (landmark record and challenge signatures too, which ingestion leaves to
    the batch signature), is young enough for the audit (`audit.parameters.MAX_RECORD_AGE_S`)
    and whose landmark and chip keys may vouch for it now (not revoked, certificates valid at
    its send time; an ingested record stops counting once its key is revoked): (landmark,
    measurement id, record), sorted by landmark id."""
    by_landmark: dict[str, list[tuple[int, int]]] = {}  # landmark → [(rtt_ns, measurement_id)]
    for m in store.round_measurements(rnd.round_id):
        by_landmark.setdefault(m.landmark_id, []).append((m.rtt_ns, m.measurement_id))
    chip_key = ("chip", chip.chip_id, key_info(chip.public_key, chip.certificate))
    checked = _Checked([], [chip_key])
    for landmark_id in sorted(by_landmark):
        landmark = store.landmark(landmark_id)
        # A landmark the mesh caught at an impossible position is no evidence of anything.
        if landmark is None or landmark.faulty:
            continue
        landmark_key = ("landmark", landmark_id,
                        key_info(landmark.public_key, landmark.certificate))
        checked.keys.append(landmark_key)
        for _, measurement_id in sorted(by_landmark[landmark_id]):
            texts = store.measurement_records([measurement_id])
            record = MeasurementRecord.from_json(json.loads(texts[0])) if texts else None
            if record is not None and record_too_old(record.sent_unix_ns, now_unix_ns + _MARGIN_NS):
                logger.info("round %s: landmark %s measurement %d is too old for a verdict",
                            rnd.round_id, landmark_id, measurement_id)
                continue
            if record is not None and _untrusted(
                    store, alerts, revoked, keys=(landmark_key, chip_key), record=record,
                    measurement_id=measurement_id, rnd=rnd, now_unix_ns=now_unix_ns):
                continue
            try:
                if record is None:
                    raise WireError("stored record missing")
                verify_record(record, landmark.public_key, chip.public_key)
            except ProtocolError as exc:
                alerts.raise_alert(
                    store, AlertType.SIGNATURE_FAILURE, subject_kind="landmark",
                    subject_id=landmark_id,
                    message=f"landmark {landmark_id} uploaded a record that fails the full check",
                    details={"measurement_id": measurement_id, "round_id": rnd.round_id,
                             "error": str(exc)}, now_unix_ns=now_unix_ns)
                continue
            checked.chosen.append((landmark, measurement_id, record))
            break
    return checked


def _untrusted(store: Store, alerts: Alerts, revoked: RevocationIndex, *,
               keys: Sequence[tuple[str, str, KeyInfo]], record: MeasurementRecord,
               measurement_id: int, rnd: Round, now_unix_ns: int) -> bool:
    """True (with a `key_refused` alert) when a key behind `record` may not vouch for it."""
    for kind, subject_id, info in keys:
        reason = refusal(revoked, kind, subject_id, info, sent_unix_ns=record.sent_unix_ns,
                         now_unix_ns=now_unix_ns)
        if reason is not None:
            untrusted_alert(store, alerts, kind=kind, subject_id=subject_id, reason=reason,
                            details={"measurement_id": measurement_id,
                                     "round_id": rnd.round_id}, now_unix_ns=now_unix_ns)
            return True
    return False


def collect(store: Store, rnd: Round, now_unix_ns: int, alerts: Alerts,
            key_floor: str = "software") -> RoundInputs | None:
    """What a chip round's verdict needs; None (the round closed here) for mesh rounds and
    rounds of a chip no longer registered. A chip round stays open until `record` closes it in
    the verdict's transaction, so a crash in between leaves it for the next leader to decide.
    The policy handed on carries the effective key minimum: the stricter of its own and the
    config's `key_floor`."""
    chip = store.chip(rnd.target_id) if rnd.target_kind == "chip" else None
    if chip is None:
        store.close_round(rnd.round_id)
        return None
    policy = store.policy(chip.policy) or DEFAULT_POLICY
    policy = replace(policy,
                     min_key_protection=stronger(policy.min_key_protection, key_floor))
    revoked = RevocationIndex(store.revocations())
    checked = _checked_best(store, rnd, chip, alerts, revoked=revoked, now_unix_ns=now_unix_ns)
    best = checked.chosen
    landmarks = tuple(lm for lm, _, _ in best)
    rtts = tuple(LandmarkRtt(lm.landmark_id, lm.lat_deg, lm.lon_deg, record.rtt_ns / 1e6)
                 for lm, _, record in best)
    ids = tuple(mid for _, mid, _ in best)
    records = tuple(record for _, _, record in best)
    last = chip.last_response_unix_ns if chip.last_response_unix_ns is not None else (
        chip.registered_unix_ns)
    # Silence is not a pass: a round without a valid answer still gets a verdict (`dark` once
    # the dark window has passed, else `inconclusive` / no_answer), so a `verified` chip that
    # stops answering leaves `verified` at its next round.
    dark = not rtts and now_unix_ns - last > policy.dark_window_s * _NS
    calibration = store.get_kv(CALIBRATION_KEY)
    return RoundInputs(rnd, chip, policy, rtts, ids, landmarks, records,
                       json.loads(calibration) if calibration else None, dark,
                       chip_key_protection(chip), concerning(revoked, checked.keys, now_unix_ns))


def decide(inputs: RoundInputs) -> Decision:
    """Worker thread: the geo verdict. Never invents a `verified`: errors become inconclusive."""
    if inputs.dark:
        return Decision(inputs, Verdict.DARK, None, "no valid response within the dark window")
    try:
        # A round without answers ends `no_answer` whatever its licence and calibration say.
        licence = licence_from_json(inputs.chip.licence) if inputs.rtts else None
        calibration = _calibration(inputs) if inputs.rtts else None
        ruling = rule(inputs.rtts, licence, calibration, SolverParams(),
                      inputs.policy.tolerate_faulty_landmarks, key_trusted=_key_trusted(inputs))
    except GeoError as exc:
        return Decision(inputs, Verdict.INCONCLUSIVE, None, f"geo verdict unavailable: {exc}")
    except Exception as exc:  # a bug must cost this round its verdict, not the whole tick's
        logger.exception("chip %s round %s: verdict failed", inputs.chip.chip_id,
                         inputs.round.round_id)
        return Decision(inputs, Verdict.INCONCLUSIVE, None,
                        f"verdict_error: {type(exc).__name__}: {exc}", ReasonCode.VERDICT_ERROR)
    return _decision(inputs, ruling)


def decide_all(items: Sequence[RoundInputs]) -> list[Decision]:
    """Worker thread: every due round of a tick. Plain rounds (no dark window, no faulty-landmark
    tolerance) sharing a calibration go through `assess_many` together, which returns exactly
    what `assess` would (tests/geo/test_batch.py) at ~3x the throughput; anything else, or a
    batch with any error, is decided one round at a time by `decide`, which turns any
    exception into that round's `inconclusive` (`verdict_error`) so one round's failure never
    drops the verdicts of the others."""
    decisions: dict[int, Decision] = {}
    batches: dict[str | None, list[tuple[int, RoundInputs, Licence]]] = {}
    for index, inputs in enumerate(items):
        if inputs.dark or not inputs.rtts or inputs.policy.tolerate_faulty_landmarks:
            decisions[index] = decide(inputs)
            continue
        try:
            licence = licence_from_json(inputs.chip.licence)
        except Exception:  # decide() turns it into this round's verdict
            decisions[index] = decide(inputs)
            continue
        key = json.dumps(inputs.calibration, sort_keys=True) if inputs.calibration else None
        batches.setdefault(key, []).append((index, inputs, licence))
    for batch in batches.values():
        try:
            assessments = assess_many(
                [(inputs.rtts, licence) for _, inputs, licence in batch],
                _calibration(batch[0][1]), SolverParams())
        except Exception:  # any failure: one round at a time, each isolated by decide()
            assessments = None
        for position, (index, inputs, _) in enumerate(batch):
            decisions[index] = (decide(inputs) if assessments is None else _decision(
                inputs, conclude(assessments[position], key_trusted=_key_trusted(inputs))))
    return [decisions[index] for index in range(len(items))]


def _calibration(inputs: RoundInputs) -> CalibrationModel | None:
    return (CalibrationModel.from_json(inputs.calibration)
            if inputs.calibration is not None else None)


def _key_trusted(inputs: RoundInputs) -> bool:
    return meets(inputs.key_protection, inputs.policy.min_key_protection)


def _decision(inputs: RoundInputs, ruling: Ruling) -> Decision:
    """The rule's ruling with its human-readable reason."""
    verdict, assessment, code = ruling.verdict, ruling.assessment, ruling.reason_code
    if code is ReasonCode.NO_ANSWER:
        return Decision(inputs, verdict, None, NO_ANSWER_REASON, code)
    if assessment is None:
        return Decision(inputs, verdict, None, f"geo verdict unavailable: {ruling.geo_error}")
    if assessment.verdict is None:
        return Decision(inputs, verdict, assessment, "no licence to compare with")
    geo_verdict = str(assessment.verdict.value)
    reason = f"{len(inputs.rtts)} landmark(s); sound area {assessment.sound_area_km2:.0f} km²"
    if inputs.policy.tolerate_faulty_landmarks:
        reason += f"; holds if any {inputs.policy.tolerate_faulty_landmarks} landmark(s) lie"
    level, minimum = inputs.key_protection, inputs.policy.min_key_protection
    if code is not None:
        reason = (f"{code}: {level} key, below the policy's minimum {minimum} (a copy of the key "
                  f"could have answered); the geometry alone says {geo_verdict}; {reason}")
    elif level == "software":
        reason += "; software key: the host owner could copy it"
    return Decision(inputs, verdict, assessment, reason, code)


def record(store: Store, decision: Decision, *, alerts: Alerts, metrics: Metrics,
           evidence: EvidenceSink, now_unix_ns: int) -> VerdictRecord:
    inputs = decision.inputs
    chip = inputs.chip
    rows = [{"landmark_id": r.landmark_id, "lat_deg": r.lat_deg, "lon_deg": r.lon_deg,
             "rtt_ms": r.rtt_ms, "measurement_id": mid}
            for r, mid in zip(inputs.rtts, inputs.measurement_ids, strict=True)]
    # Once: the verdict row and its evidence entry hold the same JSON (its regions' GeoJSON).
    assessment_json = decision.assessment.to_json() if decision.assessment else None
    # The round's close, its verdict and its evidence entry are one transaction (the caller's):
    # all three or none survive a crash, and a round closed meanwhile gets no second verdict.
    if not store.close_round(inputs.round.round_id):
        raise RoundClosedError(f"round {inputs.round.round_id} is already closed")
    verdict = store.add_verdict(chip.chip_id, round_id=inputs.round.round_id,
                                verdict=decision.verdict, created_unix_ns=now_unix_ns,
                                measurement_ids=inputs.measurement_ids, landmarks=rows,
                                assessment=assessment_json, reason=decision.reason,
                                licence=chip.licence, reason_code=decision.reason_code,
                                key_protection=inputs.key_protection)
    store.set_chip_state(chip.chip_id, decision.verdict, now_unix_ns)
    store.set_verified_until(chip.chip_id, (
        now_unix_ns + int(inputs.policy.effective_verified_ttl_s * _NS)
        if decision.verdict is Verdict.VERIFIED else None))
    metrics.verdicts.labels(decision.verdict).inc()
    logger.info("chip %s round %s: %s", chip.chip_id, inputs.round.round_id, decision.verdict)
    evidence.verdict(
        store, chip_id=chip.chip_id, round_id=inputs.round.round_id, decided_unix_ns=now_unix_ns,
        verdict=decision.verdict, chip_certificate=chip.certificate,
        landmark_certificates=[lm.certificate for lm in inputs.landmarks],
        records=inputs.records, inputs=inputs.rtts, licence=chip.licence,
        params=SolverParams(), calibration=inputs.calibration, assessment=assessment_json,
        policy={"name": inputs.policy.name, "round_interval_s": inputs.policy.round_interval_s,
                "landmarks_per_round": inputs.policy.landmarks_per_round,
                "round_timeout_s": inputs.policy.round_timeout_s,
                "dark_window_s": inputs.policy.dark_window_s,
                "tolerate_faulty_landmarks": inputs.policy.tolerate_faulty_landmarks,
                "min_key_protection": inputs.policy.min_key_protection},
        key_protection=inputs.key_protection, reason_code=decision.reason_code,
        revocations=[r.to_json() for r in inputs.revocations])
    alert_type = ALERT_FOR_VERDICT.get(decision.verdict)
    if alert_type is not None:
        details: dict[str, Any] = {"verdict_id": verdict.verdict_id,
                                   "round_id": inputs.round.round_id}
        if decision.assessment is not None:
            details["excluded_landmarks"] = list(decision.assessment.excluded_landmarks)
        alerts.raise_alert(store, alert_type, subject_kind="chip", subject_id=chip.chip_id,
                           message=f"chip {chip.chip_id}: {decision.verdict} "
                                   f"({decision.reason})",
                           details=details, now_unix_ns=now_unix_ns)
    if inputs.rtts:  # a signed answer, not a mere verdict, shows the chip is back
        alerts.auto_resolve(store, AlertType.WENT_DARK, subject_kind="chip",
                            subject_id=chip.chip_id,
                            reason="the chip answered again", now_unix_ns=now_unix_ns)
    location_alerts.check(
        store, alerts, verdict=verdict, policy=inputs.policy, now_unix_ns=now_unix_ns,
        sound_region=decision.assessment.sound_region if decision.assessment else None)
    return verdict


def expire_verified(store: Store, now_unix_ns: int) -> list[str]:
    """`verified` is a state with a shelf life (the policy's TTL, renewed by each `verified`
    round): chips whose TTL passed without one become `inconclusive`, even when no round could
    be planned or closed at all (no live landmark, no agent address, a stuck loop)."""
    expired = store.expire_verified(now_unix_ns)
    for chip_id in expired:
        logger.warning("chip %s: verified state expired without a new verified round", chip_id)
    return expired


def verdict_event(verdict: VerdictRecord) -> dict[str, Any]:
    """The SSE `verdict` event: what a dashboard needs to refresh one chip (regions stay behind
    `GET /v1/chips/{id}/verdicts`, so the stream stays small)."""
    return {"verdict_id": verdict.verdict_id, "chip_id": verdict.chip_id,
            "round_id": verdict.round_id, "verdict": verdict.verdict,
            "created_unix_ns": verdict.created_unix_ns, "reason": verdict.reason,
            "reason_code": verdict.reason_code, "key_protection": verdict.key_protection}


def landmark_faults(store: Store, alerts: Alerts, *, window_s: float, settle_s: float,
                    now_unix_ns: int) -> None:
    """A landmark that lost every chip it was asked to measure (at least two chips, while other
    landmarks got answers) is at fault, not the chips. Only tasks that expired at least
    `settle_s` ago count: an answer may still be on its way in a landmark's upload batch.

    The cost follows the landmarks, not the fleet (the leader runs this every few seconds): a
    probe per landmark stops at its first answer, and only a landmark without one has its
    tasks counted. A landmark whose `landmark_fault` alert is still unresolved is skipped (its
    alert could not open again); it is probed only when no other landmark answered, since the
    rule needs to know whether any landmark did."""
    since = now_unix_ns - int(window_s * _NS)
    settled = now_unix_ns - int(settle_s * _NS)
    alerted = store.unresolved_alert_subjects("landmark", AlertType.LANDMARK_FAULT)
    landmark_ids = [lm.landmark_id for lm in store.landmarks()]
    watched = [lm for lm in landmark_ids if lm not in alerted]
    answering = store.landmarks_answered(watched, since, settled)
    silent = [lm for lm in watched if lm not in answering]
    if not silent:
        return
    if not answering and not store.landmarks_answered(
            [lm for lm in landmark_ids if lm in alerted], since, settled):
        return  # no landmark got an answer: the chips (or the network) are out, not one landmark
    for landmark_id, (delivered, chips) in store.landmark_task_counts(
            silent, since, settled).items():
        if chips >= 2 and delivered >= 3:
            alerts.raise_alert(
                store, AlertType.LANDMARK_FAULT, subject_kind="landmark", subject_id=landmark_id,
                message=f"landmark {landmark_id} got no answer from any of {chips} chips "
                        "that other landmarks reach",
                details={"tasks": delivered, "chips": chips, "reason": "lost_all_chips"},
                now_unix_ns=now_unix_ns)


def refresh_mesh_models(store: Store, alerts: Alerts, *, since_unix_ns: int,
                        now_unix_ns: int) -> None:
    """Audit landmark positions from mesh measurements, then fit the calibration model from the
    pairs whose both ends passed the audit (a misplaced landmark would teach it wrong speeds).

    `faulty` is sticky: once the mesh proves a position impossible, the landmark stays out of
    rounds and verdicts even when later windows hold no evidence against it (it is no longer
    probed, so silence proves nothing). Re-registering it at a corrected position clears it."""
    landmarks = {lm.landmark_id: lm for lm in store.landmarks()}
    mesh = [
        (m.landmark_id, m.target_id, m.rtt_ns / 1e6)
        for m in store.mesh_measurements(since_unix_ns)
        if m.landmark_id in landmarks and m.target_id in landmarks
    ]
    if not mesh:
        return
    positions = {i: (lm.lat_deg, lm.lon_deg) for i, lm in landmarks.items()}
    flagged = {lm.landmark_id for lm in landmarks.values() if lm.faulty}
    for landmark_id, audit in audit_landmarks(positions, mesh).items():
        status = str(audit.status)
        streak = _suspect_windows(landmarks[landmark_id].audit, status)
        if status in ("impossible", "suspect"):
            flagged.add(landmark_id)  # its pairs would teach the calibration wrong speeds
        if status == "impossible":
            alerts.raise_alert(
                store, AlertType.LANDMARK_FAULT, subject_kind="landmark", subject_id=landmark_id,
                message=f"landmark {landmark_id} position is impossible given its peers",
                details={"audit": audit.to_json()}, now_unix_ns=now_unix_ns)
        elif streak >= SUSPECT_WINDOWS:
            alerts.raise_alert(
                store, AlertType.LANDMARK_SUSPECT, subject_kind="landmark", subject_id=landmark_id,
                message=f"landmark {landmark_id} is probably misplaced: its mesh RTTs contradict "
                        f"its position in {streak} consecutive mesh windows",
                details={"audit": audit.to_json()}, now_unix_ns=now_unix_ns)
        elif status == "ok":
            alerts.auto_resolve(store, AlertType.LANDMARK_SUSPECT, subject_kind="landmark",
                                subject_id=landmark_id, now_unix_ns=now_unix_ns,
                                reason="the mesh no longer contradicts its position")
        if not landmarks[landmark_id].faulty:
            store.set_landmark_audit(landmark_id, {**audit.to_json(), "suspect_windows": streak},
                                     faulty=status == "impossible")
    samples = [
        CalibrationSample(a, distance_km(*positions[a], *positions[b]), rtt_ms)
        for a, b, rtt_ms in mesh if a not in flagged and b not in flagged
    ]
    try:
        store.put_kv(CALIBRATION_KEY, json.dumps(CalibrationModel.fit(samples).to_json()))
    except GeoError as exc:
        logger.info("calibration not refreshed: %s", exc)


def _suspect_windows(previous: dict[str, Any] | None, status: str) -> int:
    """Consecutive mesh windows (this one included) in which the landmark was `suspect`."""
    if status != "suspect":
        return 0
    return int((previous or {}).get("suspect_windows", 0)) + 1


def collect_all(store: Store, rounds: Sequence[Round], now_unix_ns: int,
                alerts: Alerts, key_floor: str = "software") -> list[RoundInputs]:
    """Each round in its own savepoint: a round whose collection fails stays open (retried
    next tick, logged) and the others go on."""
    out = []
    for rnd in rounds:
        try:
            with alerts.held(), store.transaction():
                inputs = collect(store, rnd, now_unix_ns, alerts, key_floor)
        except Exception:
            logger.exception("round %s: collecting its measurements failed", rnd.round_id)
            continue
        if inputs is not None:
            out.append(inputs)
    return out
