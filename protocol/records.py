"""Signed measurement records and batches: what landmarks upload and the verifier checks.

A record carries the exact CHALLENGE datagram (with its nonce commitment), the revealed nonce and
the exact RESPONSE datagram, so anyone holding the public keys can re-check, independently of the
landmark, that the nonce opens the commitment and that the target signed that very challenge and
nonce. The landmark
signs a domain-separated canonical encoding of the record (never its JSON form).

Version 2 (domain `lightfence/record/v2`) also signs the round and the task the measurement
answers, as the verifier handed them out, so ingestion binds a record to its task by id instead
of guessing from time windows. A version-1 record (no `round_id`/`task_id` in its JSON, written
before the field existed) still parses and verifies byte for byte: old evidence stays auditable.
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from typing import Any, Self

from protocol.codec import Writer, from_b64, to_b64, validate_id
from protocol.errors import WireError
from protocol.keys import SIGNATURE_BYTES, Signer, verify_signature
from protocol.wire import (
    NONCE_BYTES,
    RESPONSE_BYTES,
    RESPONSE_HEADER,
    challenge_fields,
    decode_challenge,
    decode_response,
    nonce_commitment,
    response_signed_bytes,
)

RECORD_DOMAIN_V1 = b"lightfence/record/v1\x00"
RECORD_DOMAIN_V2 = b"lightfence/record/v2\x00"
BATCH_DOMAIN = b"lightfence/batch/v1\x00"
TARGET_KINDS = ("chip", "landmark")
# "kernel-tx": send and receive both stamped by the kernel (SO_TIMESTAMPING TX + SO_TIMESTAMPNS);
# "kernel": receive stamped by the kernel, send read just before sendto; "monotonic": user space.
CLOCK_SOURCES = ("kernel-tx", "kernel", "monotonic")
_U64_MAX = (1 << 64) - 1
RECORD_JSON_FIELDS_V1 = ("landmark_id", "target_kind", "target_id", "nonce_b64", "sent_unix_ns",
                         "rtt_ns", "clock_source", "challenge_b64", "response_b64",
                         "signature_b64")
RECORD_JSON_FIELDS_V2 = (*RECORD_JSON_FIELDS_V1, "round_id", "task_id")
_U8, _U16, _U64 = struct.Struct(">B"), struct.Struct(">H"), struct.Struct(">Q")
_U64_PAIR = struct.Struct(">QQ")
NO_TASK_ID = 0  # v2 task_id of a measurement not ordered by a verifier (config or file targets)


@dataclass(frozen=True, slots=True)
class MeasurementRecord:
    landmark_id: str
    target_kind: str  # "chip" | "landmark" (mesh probe)
    target_id: str
    nonce: bytes  # 32 B, revealed in the timed REVEAL; the challenge holds its commitment
    sent_unix_ns: int  # landmark wall clock just before the REVEAL's sendto
    rtt_ns: int
    clock_source: str  # one of CLOCK_SOURCES
    challenge: bytes  # exact CHALLENGE datagram (landmark-signed, commits to the nonce)
    response: bytes  # exact RESPONSE datagram (target-signed over challenge digest and nonce)
    signature: bytes  # landmark signature over `signed_bytes()`
    round_id: str = ""  # v2: the round the task belongs to ("" in version 1)
    task_id: int = NO_TASK_ID  # v2: the verifier's task id (NO_TASK_ID: no verifier task)
    version: int = 2  # 1: written before records named their task (signs no round or task)

    def __post_init__(self) -> None:
        if self.version not in (1, 2):
            raise WireError(f"record version must be 1 or 2, got {self.version}")
        if self.version == 1:
            if self.round_id or self.task_id != NO_TASK_ID:
                # v1 bytes do not cover a task: anything named here would be unsigned.
                raise WireError("a version-1 record names no round or task")
        else:
            validate_id(self.round_id, "round id")
            if not 0 <= self.task_id <= _U64_MAX:
                raise WireError("task_id out of range")
        validate_id(self.landmark_id, "landmark id")
        validate_id(self.target_id, "target id")
        if self.target_kind not in TARGET_KINDS:
            raise WireError(f"target_kind must be one of {TARGET_KINDS}, got {self.target_kind!r}")
        if self.clock_source not in CLOCK_SOURCES:
            raise WireError(
                f"clock_source must be one of {CLOCK_SOURCES}, got {self.clock_source!r}"
            )
        if len(self.nonce) != NONCE_BYTES:
            raise WireError(f"nonce must be {NONCE_BYTES} bytes")
        if len(self.signature) != SIGNATURE_BYTES:
            raise WireError(f"record signature must be {SIGNATURE_BYTES} bytes")
        if not 0 <= self.sent_unix_ns <= _U64_MAX:
            raise WireError("sent_unix_ns out of range")
        if not 0 < self.rtt_ns <= _U64_MAX:
            raise WireError(f"rtt_ns must be positive, got {self.rtt_ns}")

    def signed_bytes(self) -> bytes:
        """The canonical encoding the landmark signs (`protocol.codec`'s layout: one-byte
        length before each text, two-byte length before each datagram, big-endian integers).
        Built in one join rather than through `Writer`: ingestion encodes every record once
        per batch to check the batch signature, and the field-by-field writer was a tenth of
        its CPU. `__post_init__` validated every text as an ASCII id or a known name."""
        parts = [RECORD_DOMAIN_V1 if self.version == 1 else RECORD_DOMAIN_V2,
                 _short(self.landmark_id), _short(self.target_kind), _short(self.target_id)]
        if self.version == 2:
            parts += (_short(self.round_id), _U64.pack(self.task_id))
        parts += (self.nonce, _U64_PAIR.pack(self.sent_unix_ns, self.rtt_ns),
                  _short(self.clock_source), _blob(self.challenge, "challenge"),
                  _blob(self.response, "response"))
        return b"".join(parts)

    def digest(self) -> bytes:
        """SHA-256 of the signed bytes and the signature: the record's identity inside a batch."""
        return hashlib.sha256(self.signed_bytes() + self.signature).digest()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "landmark_id": self.landmark_id,
            "target_kind": self.target_kind,
            "target_id": self.target_id,
            "nonce_b64": to_b64(self.nonce),
            "sent_unix_ns": self.sent_unix_ns,
            "rtt_ns": self.rtt_ns,
            "clock_source": self.clock_source,
            "challenge_b64": to_b64(self.challenge),
            "response_b64": to_b64(self.response),
            "signature_b64": to_b64(self.signature),
        }
        if self.version == 2:  # a v1 record round-trips byte for byte, without the fields
            out["round_id"] = self.round_id
            out["task_id"] = self.task_id
        return out

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        """Parse (not verify) a record; WireError when malformed. A record naming neither a
        round nor a task is version 1; one naming either must name both (version 2).

        The verifier parses every uploaded record: when every field has exactly its JSON type
        (as `json`/`orjson` give them) the fields go to the constructor by position, checked
        by `__post_init__` and `from_b64` as ever; otherwise the field-by-field reading below
        names the first bad one."""
        if not isinstance(obj, dict):
            raise WireError("a measurement record must be a JSON object")
        version = 2 if "round_id" in obj or "task_id" in obj else 1
        get = obj.get
        landmark_id, target_kind, target_id = (get("landmark_id"), get("target_kind"),
                                               get("target_id"))
        clock_source, sent_unix_ns, rtt_ns = (get("clock_source"), get("sent_unix_ns"),
                                              get("rtt_ns"))
        round_id, task_id = ((get("round_id"), get("task_id")) if version == 2
                             else ("", NO_TASK_ID))
        if (type(landmark_id) is str and type(target_kind) is str and type(target_id) is str
                and type(clock_source) is str and type(round_id) is str
                and type(sent_unix_ns) is int and type(rtt_ns) is int and type(task_id) is int):
            return cls(landmark_id, target_kind, target_id,
                       from_b64(get("nonce_b64"), "nonce_b64", NONCE_BYTES),
                       sent_unix_ns, rtt_ns, clock_source,
                       from_b64(get("challenge_b64"), "challenge_b64"),
                       from_b64(get("response_b64"), "response_b64"),
                       from_b64(get("signature_b64"), "signature_b64", SIGNATURE_BYTES),
                       round_id, task_id, version)
        return cls(
            landmark_id=_text(obj, "landmark_id"),
            target_kind=_text(obj, "target_kind"),
            target_id=_text(obj, "target_id"),
            nonce=from_b64(obj.get("nonce_b64"), "nonce_b64", NONCE_BYTES),
            sent_unix_ns=_integer(obj, "sent_unix_ns"),
            rtt_ns=_integer(obj, "rtt_ns"),
            clock_source=_text(obj, "clock_source"),
            challenge=from_b64(obj.get("challenge_b64"), "challenge_b64"),
            response=from_b64(obj.get("response_b64"), "response_b64"),
            signature=from_b64(obj.get("signature_b64"), "signature_b64", SIGNATURE_BYTES),
            round_id=_text(obj, "round_id") if version == 2 else "",
            task_id=_integer(obj, "task_id") if version == 2 else NO_TASK_ID,
            version=version,
        )

    def json_fields(self) -> tuple[str, ...]:
        """The JSON field names of this record's version, in `to_json` order."""
        return RECORD_JSON_FIELDS_V1 if self.version == 1 else RECORD_JSON_FIELDS_V2


def _text(obj: dict[str, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise WireError(f"record field {name!r} must be a string")
    return value


def _integer(obj: dict[str, Any], name: str) -> int:
    value = obj.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise WireError(f"record field {name!r} must be an integer")
    return value


def _short(text: str) -> bytes:
    """`Writer.short_str` of a validated id or name (ASCII, at most 64 characters)."""
    data = text.encode("ascii")
    return _U8.pack(len(data)) + data


def _blob(data: bytes, what: str) -> bytes:
    """`Writer.blob`: at most 65535 bytes after a two-byte length."""
    if len(data) > 0xFFFF:
        raise WireError(f"{what} of {len(data)} bytes does not fit a two-byte length")
    return _U16.pack(len(data)) + data


def sign_record(
    signer: Signer, *, landmark_id: str, target_kind: str, target_id: str, nonce: bytes,
    sent_unix_ns: int, rtt_ns: int, clock_source: str, challenge: bytes, response: bytes,
    round_id: str | None = None, task_id: int = NO_TASK_ID,
) -> MeasurementRecord:
    """A version-2 record naming `round_id` and `task_id`; without `round_id`, a version-1
    record (the format before records named their task; kept for old evidence and tests of
    the ingestion fallback)."""
    version = 1 if round_id is None else 2
    fields = (landmark_id, target_kind, target_id, nonce, sent_unix_ns, rtt_ns, clock_source,
              challenge, response)
    unsigned = MeasurementRecord(*fields, bytes(SIGNATURE_BYTES), round_id or "", task_id,
                                 version)
    return MeasurementRecord(*fields, signer.sign(unsigned.signed_bytes()), round_id or "",
                             task_id, version)


def verify_record_answer(record: MeasurementRecord, target_public_key: bytes) -> None:
    """Everything `verify_record` checks except the landmark's own signatures (for a receiver
    that already verified the batch signature covering the record's bytes).

    Checks: the challenge names the record's landmark and target; the record's nonce opens the
    challenge's commitment; the send time lies inside the challenge's validity and the answer
    arrived before it expired; the response carries that nonce and the target signed exactly this
    challenge and nonce. SignatureError for a bad target signature, WireError otherwise.

    The verifier runs this once per uploaded measurement, so well-formed datagrams are read
    in place (`wire.challenge_fields`, the RESPONSE's one fixed layout) rather than decoded
    into messages; anything else takes the decoders, which name what is wrong. The checks the
    in-place reading skips hold anyway: a challenge id equal to the record's valid id is a
    valid id, and a challenge expiring before it is issued has no send time inside it.
    """
    fields = challenge_fields(record.challenge)
    if fields is None:
        challenge = decode_challenge(record.challenge)
        fields = (challenge.landmark_id, challenge.target_id, challenge.commitment,
                  challenge.issued_unix_ns, challenge.expires_unix_ns, 0, b"")
    landmark_id, target_id, commitment, issued_unix_ns, expires_unix_ns, _, _ = fields
    if landmark_id != record.landmark_id:
        raise WireError("record landmark id does not match its challenge")
    if target_id != record.target_id:
        raise WireError("record target id does not match its challenge")
    if nonce_commitment(record.nonce) != commitment:  # the record's nonce is NONCE_BYTES long
        raise WireError("nonce does not open the challenge's commitment")
    if not issued_unix_ns <= record.sent_unix_ns < expires_unix_ns:
        raise WireError("record send time lies outside the challenge's validity")
    if record.sent_unix_ns + record.rtt_ns > expires_unix_ns:
        raise WireError("the response arrived after the challenge expired")
    response = record.response
    if len(response) == RESPONSE_BYTES and response[:4] == RESPONSE_HEADER:
        nonce, signature = response[4:4 + NONCE_BYTES], response[4 + NONCE_BYTES:]
    else:  # not the one valid layout: WireError (or a RESPONSE after all)
        decoded = decode_response(response)
        nonce, signature = decoded.nonce, decoded.signature
    if nonce != record.nonce:
        raise WireError("record nonce does not match its response")
    # `wire.verify_response` without its first step: it would decode the challenge again to
    # check that the response's nonce opens the commitment, which is the record's nonce,
    # checked above.
    verify_signature(target_public_key, response_signed_bytes(record.challenge, record.nonce),
                     signature)


def verify_record(
    record: MeasurementRecord, landmark_public_key: bytes, target_public_key: bytes
) -> None:
    """Check a record end to end; SignatureError for a bad signature, WireError otherwise.

    The landmark signed the record and the challenge, and `verify_record_answer` holds.
    """
    verify_record_answer(record, target_public_key)
    verify_signature(landmark_public_key, record.signed_bytes(), record.signature)
    decode_challenge(record.challenge).verify(landmark_public_key)


@dataclass(frozen=True, slots=True)
class MeasurementBatch:
    batch_id: str
    landmark_id: str
    records: tuple[MeasurementRecord, ...]
    signature: bytes  # landmark signature over `signed_bytes()`

    def __post_init__(self) -> None:
        validate_id(self.batch_id, "batch id")
        validate_id(self.landmark_id, "landmark id")
        if len(self.signature) != SIGNATURE_BYTES:
            raise WireError(f"batch signature must be {SIGNATURE_BYTES} bytes")

    def signed_bytes(self) -> bytes:
        writer = (
            Writer()
            .raw(BATCH_DOMAIN)
            .short_str(self.batch_id)
            .short_str(self.landmark_id)
            .u64(len(self.records))
        )
        for record in self.records:
            writer.raw(record.digest())
        return writer.bytes()

    def to_json(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "landmark_id": self.landmark_id,
            "records": [record.to_json() for record in self.records],
            "signature_b64": to_b64(self.signature),
        }

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        if not isinstance(obj, dict):
            raise WireError("a measurement batch must be a JSON object")
        records = obj.get("records")
        if not isinstance(records, list):
            raise WireError("batch field 'records' must be a list")
        batch_id, landmark_id = obj.get("batch_id"), obj.get("landmark_id")
        if not isinstance(batch_id, str) or not isinstance(landmark_id, str):
            raise WireError("batch_id and landmark_id must be strings")
        return cls(
            batch_id=batch_id,
            landmark_id=landmark_id,
            records=tuple(MeasurementRecord.from_json(item) for item in records),
            signature=from_b64(obj.get("signature_b64"), "signature_b64", SIGNATURE_BYTES),
        )


def sign_batch(
    signer: Signer, batch_id: str, landmark_id: str, records: tuple[MeasurementRecord, ...]
) -> MeasurementBatch:
    unsigned = MeasurementBatch(batch_id, landmark_id, records, bytes(SIGNATURE_BYTES))
    return MeasurementBatch(batch_id, landmark_id, records, signer.sign(unsigned.signed_bytes()))


def verify_batch(batch: MeasurementBatch, landmark_public_key: bytes) -> None:
    """The landmark signed this batch and every record names it; records are checked one by one
    with `verify_record` (which needs each target's key)."""
    for index, record in enumerate(batch.records):
        if record.landmark_id != batch.landmark_id:
            raise WireError(f"record {index} is from {record.landmark_id}, not {batch.landmark_id}")
    verify_signature(landmark_public_key, batch.signed_bytes(), batch.signature)
