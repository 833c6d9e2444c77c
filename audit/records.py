"""One signed measurement record of a verdict entry, checked field by field.

The auditor re-implements the record checks (instead of calling `protocol.records.verify_record`
once) so each failure names the exact field: the landmark's signature over the record and over
the challenge datagram, the chip's signature over that exact challenge, the nonce, landmark and
chip bindings between record, challenge and response, freshness (issued <= sent < expiry, answer
before expiry, before the verdict, at most `audit.parameters.MAX_RECORD_AGE_S` old), nonce
uniqueness, certificate validity at the send time, and revocation (the verifier's key rule).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from audit.parameters import MAX_RECORD_AGE_S, record_too_old
from audit.report import NS_PER_S, AuditState
from protocol.certs import ChipCertificate, LandmarkCertificate
from protocol.codec import to_b64
from protocol.errors import ProtocolError, SignatureError
from protocol.keys import verify_signature
from protocol.records import MeasurementRecord
from protocol.revocation import Revocation, revoked_by
from protocol.wire import (
    decode_challenge,
    decode_response,
    nonce_commitment,
    response_signed_bytes,
)


class _RecordCheck:
    """The findings of one record: each names a field of the record's JSON path; any finding
    means the record backs no input."""

    __slots__ = ("audit", "index", "ok", "where")

    def __init__(self, audit: AuditState, where: str, index: int) -> None:
        self.audit, self.where, self.index, self.ok = audit, where, index, True

    def fail(
        self, check: str, field_name: str, message: str, expected: Any = None, found: Any = None
    ) -> None:
        self.ok = False
        self.audit.fail(
            check, f"{self.where}.{field_name}", message, entry=self.index, expected=expected,
            found=found,
        )  # fmt: skip

    def signed_in_validity(
        self,
        record: MeasurementRecord,
        cert: ChipCertificate | LandmarkCertificate,
        message: bytes,
        signature: bytes,
        *,
        check: str,
        field_name: str,
        text: str,
        validity_check: str,
    ) -> None:
        """``cert``'s key signed ``message``, and the record was sent inside its validity."""
        try:
            verify_signature(cert.public_key, message, signature)
            self.audit.counts["signatures"] += 1
        except SignatureError:
            self.fail(check, field_name, text)
        sent_s = record.sent_unix_ns // NS_PER_S
        if not cert.not_before_unix_s <= sent_s <= cert.not_after_unix_s:
            kind = "chip" if isinstance(cert, ChipCertificate) else "landmark"
            self.fail(
                validity_check,
                "sent_unix_ns",
                f"measured outside the {kind} certificate's validity",
                f"[{cert.not_before_unix_s}, {cert.not_after_unix_s}] s",
                sent_s,
            )


def check_record(
    audit: AuditState,
    where: str,
    index: int,
    raw: Any,
    *,
    chip: ChipCertificate | None,
    landmarks: Mapping[str, LandmarkCertificate],
    chip_id: Any,
    round_id: Any,
    decided_ns: int,
    nonces: dict[bytes, str],
) -> MeasurementRecord | None:
    """Return the record when every check passes, else None (with findings recorded)."""
    try:
        record = MeasurementRecord.from_json(raw)
    except ProtocolError as exc:
        audit.fail("record.format", where, str(exc), entry=index)
        return None
    rc = _RecordCheck(audit, where, index)
    fail = rc.fail
    if record.target_kind != "chip" or record.target_id != chip_id:
        fail(
            "record.target",
            "target_id",
            "record measures another target",
            f"chip {chip_id}",
            f"{record.target_kind} {record.target_id}",
        )
    if record.version >= 2 and record.round_id != round_id:
        # The landmark signed the round it measured for (version-1 records name none).
        fail("record.round", "round_id", "record was made for another round", round_id,
             record.round_id)
    landmark = landmarks.get(record.landmark_id)
    if landmark is None:
        fail(
            "record.landmark",
            "landmark_id",
            "no certificate for this landmark in the evidence",
            None,
            record.landmark_id,
        )
    else:
        rc.signed_in_validity(
            record, landmark, record.signed_bytes(), record.signature,
            check="record.landmark_signature", field_name="signature_b64",
            text=f"landmark {record.landmark_id} did not sign this record",
            validity_check="landmark_certificate.validity",
        )  # fmt: skip
    previous = nonces.get(record.nonce)
    if previous is not None:
        fail(
            "record.replay",
            "nonce_b64",
            f"nonce already used by {previous}",
            "a fresh nonce",
            to_b64(record.nonce),
        )
    nonces.setdefault(record.nonce, where)
    if record.sent_unix_ns + record.rtt_ns > decided_ns:
        fail(
            "record.after_verdict",
            "sent_unix_ns",
            "measurement completed after the verdict",
            f"<= {decided_ns}",
            record.sent_unix_ns + record.rtt_ns,
        )
    if record_too_old(record.sent_unix_ns, decided_ns):
        fail(
            "record.stale",
            "sent_unix_ns",
            f"measured more than {MAX_RECORD_AGE_S:g} s before the verdict",
            f">= {decided_ns - int(MAX_RECORD_AGE_S * NS_PER_S)}",
            record.sent_unix_ns,
        )
    try:
        challenge = decode_challenge(record.challenge)
    except ProtocolError as exc:
        fail("challenge.format", "challenge_b64", str(exc))
        return None
    # The challenge commits to the nonce (SHA-256) and the timed REVEAL disclosed it.
    commitment = nonce_commitment(record.nonce)
    for name, mine, theirs in (
        ("landmark_id", record.landmark_id, challenge.landmark_id),
        ("target_id", record.target_id, challenge.target_id),
        ("nonce_b64", to_b64(commitment), to_b64(challenge.commitment)),
    ):
        if mine != theirs:
            fail(
                "challenge.binding",
                name,
                f"record and its challenge disagree on {name}",
                theirs,
                mine,
            )
    if landmark is not None:
        try:
            challenge.verify(landmark.public_key)
            audit.counts["signatures"] += 1
        except ProtocolError:
            fail(
                "challenge.landmark_signature",
                "challenge_b64",
                f"landmark {record.landmark_id} did not sign this challenge",
            )
    if not challenge.issued_unix_ns <= record.sent_unix_ns < challenge.expires_unix_ns:
        fail(
            "record.freshness",
            "sent_unix_ns",
            "sent outside the challenge's validity",
            f"[{challenge.issued_unix_ns}, {challenge.expires_unix_ns})",
            record.sent_unix_ns,
        )
    if record.sent_unix_ns + record.rtt_ns > challenge.expires_unix_ns:
        fail(
            "record.freshness",
            "rtt_ns",
            "answer arrived after the challenge expired",
            f"<= {challenge.expires_unix_ns}",
            record.sent_unix_ns + record.rtt_ns,
        )
    try:
        response = decode_response(record.response)
    except ProtocolError as exc:
        fail("response.format", "response_b64", str(exc))
        return None
    if response.nonce != record.nonce:
        fail(
            "response.binding",
            "response_b64",
            "response answers another nonce",
            to_b64(record.nonce),
            to_b64(response.nonce),
        )
    if chip is None:
        return None
    rc.signed_in_validity(
        record, chip, response_signed_bytes(record.challenge, response.nonce),
        response.signature, check="response.chip_signature", field_name="response_b64",
        text=f"chip {chip.chip_id} did not sign this exact challenge",
        validity_check="chip_certificate.validity",
    )  # fmt: skip
    return record if rc.ok else None


def entry_revocations(
    audit: AuditState, where: str, index: int, entry: Mapping[str, Any]
) -> list[Revocation]:
    """The revocations the verifier had in force (absent in entries written before them)."""
    raw = entry.get("revocations", [])
    if not isinstance(raw, list):
        audit.fail("entry.format", f"{where}.revocations", "must be a list", entry=index)
        return []
    out = []
    for i, item in enumerate(raw):
        try:
            out.append(Revocation.from_json(item))
        except ProtocolError as exc:
            audit.fail("revocation.format", f"{where}.revocations[{i}]", str(exc), entry=index)
    return out


def revoked(
    audit: AuditState,
    where: str,
    index: int,
    record: MeasurementRecord,
    *,
    chip: ChipCertificate | None,
    landmarks: Mapping[str, LandmarkCertificate],
    decided_ns: int,
    revocations: Sequence[Revocation],
) -> bool:
    """The verifier's key rule (protocol.revocation): a record whose landmark or chip key was
    revoked by the time of the verdict does not count, whatever its send time."""
    landmark = landmarks.get(record.landmark_id)
    for kind, subject_id, key, serial in (
        ("landmark", record.landmark_id, landmark.public_key if landmark else None, None),
        ("chip", record.target_id, chip.public_key if chip else None,
         chip.serial if chip else None),
    ):
        found = None if key is None else revoked_by(
            revocations, kind=kind, subject_id=subject_id, public_key=key, serial=serial,
            as_of_unix_ns=decided_ns,
        )  # fmt: skip
        if found is not None:
            audit.fail(
                "record.revoked",
                f"{where}.signature_b64",
                f"{kind} {subject_id}: its key was revoked before the verdict",
                entry=index,
                expected="no revoked key",
                found=found.to_json(),
            )
            return True
    return False
