"""Upload checks that need no database: parsing and every signature check of a batch.

`check_upload` is a pure function of the upload body and the public keys it needs, so it runs in
worker processes (`verifier.ingest.Ingestor`, `verify_processes`): the parsing, the per-record
decoding and the Ed25519 verifications then hold no lock the HTTP loop or the database thread
wait for. PyNaCl itself releases the GIL, but the Python around each verification does not, and
on a loaded machine a thread descheduled while holding the GIL stalls every other thread; a
separate process stalls only itself. The event loop keeps a cheap `peek_upload` (one JSON
parse) to authorise the upload, answer duplicates and pick the keys before any checking.

What is verified (docs/verifier.md, "Signature cost"): the landmark's batch signature once, then
per record `protocol.records.verify_record_answer`. A record whose `reason` is None passed both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import orjson

from protocol.codec import validate_id
from protocol.errors import ProtocolError, SignatureError, WireError
from protocol.records import MeasurementBatch, verify_batch, verify_record_answer
from verifier.errors import InvalidInputError


class BadBatchError(InvalidInputError):
    """The upload is not a well-formed MeasurementBatch (400, nothing stored)."""

    status_code = 400


_RECORD_FIELDS = ("landmark_id", "target_kind", "target_id", "nonce_b64", "sent_unix_ns",
                  "rtt_ns", "clock_source", "challenge_b64", "response_b64", "signature_b64")


@dataclass(frozen=True, slots=True)
class UploadHeader:
    """What the event loop reads before any check: enough to authorise and pick keys."""

    batch_id: str
    landmark_id: str
    targets: frozenset[tuple[str, str]]  # (target_kind, target_id) named by the records


@dataclass(frozen=True, slots=True)
class CheckedRecord:
    target_kind: str
    target_id: str
    nonce: bytes
    sent_unix_ns: int
    rtt_ns: int
    clock_source: str
    record_json: str  # the record's fields as uploaded, re-serialised compactly
    reason: str | None  # None: bindings and target signature hold; else why it is rejected


@dataclass(frozen=True, slots=True)
class CheckedBatch:
    batch_id: str
    landmark_id: str
    records: tuple[CheckedRecord, ...]
    signature_error: str | None  # the batch signature failed: no record may be stored


def peek_upload(body: bytes) -> UploadHeader:
    """Parse just enough of an upload to authorise it; BadBatchError when that part is
    malformed. Everything else is validated by `check_upload`."""
    try:
        obj = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadBatchError(f"body is not JSON: {exc}") from exc
    if not isinstance(obj, dict) or not isinstance(obj.get("records"), list):
        raise BadBatchError("malformed measurement batch: a JSON object with a 'records' list"
                            " is required")
    try:
        # validate_id refuses non-strings too (its annotation says str; JSON may hold anything)
        batch_id = validate_id(obj.get("batch_id"), "batch id")  # type: ignore[arg-type]
        landmark_id = validate_id(obj.get("landmark_id"), "landmark id")  # type: ignore[arg-type]
    except WireError as exc:
        raise BadBatchError(f"malformed measurement batch: {exc}") from exc
    targets = frozenset(
        (item["target_kind"], item["target_id"]) for item in obj["records"]
        if isinstance(item, dict) and isinstance(item.get("target_kind"), str)
        and isinstance(item.get("target_id"), str))
    return UploadHeader(batch_id, landmark_id, targets)


def check_upload(body: bytes, landmark_key: bytes,
                 target_keys: Mapping[tuple[str, str], bytes]) -> CheckedBatch:
    """Parse the batch, check its signature with `landmark_key` and each record's answer with
    its target's key (absent from `target_keys`: `unknown_target`). BadBatchError when
    malformed. Runs in a worker process; everything it takes and returns is picklable."""
    try:
        obj = orjson.loads(body)
        batch = MeasurementBatch.from_json(obj)
    except orjson.JSONDecodeError as exc:
        raise BadBatchError(f"body is not JSON: {exc}") from exc
    except ProtocolError as exc:
        raise BadBatchError(f"malformed measurement batch: {exc}") from exc
    try:
        verify_batch(batch, landmark_key)
    except ProtocolError as exc:
        return CheckedBatch(batch.batch_id, batch.landmark_id, (), str(exc))
    checked = []
    for record, item in zip(batch.records, obj["records"], strict=True):
        key = target_keys.get((record.target_kind, record.target_id))
        reason: str | None = None
        if key is None:
            reason = "unknown_target"
        else:
            try:
                verify_record_answer(record, key)
            except SignatureError:
                reason = "signature"
            except WireError:
                reason = "wire"
        # The stored text is built from the uploaded fields (unknown ones dropped) rather than
        # re-encoded from the parsed record: the same content, since `from_json` accepted
        # exactly these values, at a tenth of the cost.
        text = orjson.dumps({name: item[name] for name in _RECORD_FIELDS}).decode()
        checked.append(CheckedRecord(record.target_kind, record.target_id, record.nonce,
                                     record.sent_unix_ns, record.rtt_ns, record.clock_source,
                                     text, reason))
    return CheckedBatch(batch.batch_id, batch.landmark_id, tuple(checked), None)
