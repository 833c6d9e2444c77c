"""The evidence format: entry types, canonical JSON, per-chip chain links, bundle manifest.

Pure, no I/O. The verifier writes evidence entries and bundles (`verifier.evidence`) and the
offline auditor reads them (`audit`); both take the format from here and from nowhere else, so
the auditor depends on no server code. Because one implementation serves both sides, the golden
vectors in tests/protocol/test_evidence_format.py pin its exact bytes and hashes: a change to
the canonical form fails there, not only as a mismatch between writer and reader.

- **Canonical JSON** (`canonical_json`): sorted keys, no whitespace, ASCII only, bytes as
  base64, tuples as lists, NaN and infinities refused. An entry's canonical bytes are what the
  transparency log hashes (`entry_leaf_hash`), so an entry cannot change without changing its
  leaf hash.
- **Entry types**: a verdict entry (`verdict_entry`, type `VERDICT_EVIDENCE_TYPE`) holds all a
  recomputation needs; an alert entry (`alert_entry`, `ALERT_EVIDENCE_TYPE`) the alert JSON.
- **Chain link** (`chain_link`): an entry about a chip also carries the chip's sequence number
  and the leaf hash of the chip's previous entry, so a chip's entries form a hash chain.
- **Bundle** (`BUNDLE_FORMAT`): entries with inclusion proofs, signed tree heads and a manifest
  signed with the log key over `manifest_message` (layout in docs/evidence.md, "Formats").
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from protocol.codec import to_b64
from protocol.errors import ProtocolError
from protocol.merkle import leaf_hash
from protocol.records import MeasurementRecord

VERDICT_EVIDENCE_TYPE = "lightfence-verdict-evidence/1"
ALERT_EVIDENCE_TYPE = "lightfence-alert-evidence/1"
BUNDLE_FORMAT = "lightfence-evidence-bundle/2"
# Format /1 bundles had no manifest: still readable, but they cannot prove completeness.
LEGACY_BUNDLE_FORMAT = "lightfence-evidence-bundle/1"
READABLE_BUNDLE_FORMATS = (BUNDLE_FORMAT, LEGACY_BUNDLE_FORMAT)
# Entry fields that chain a chip's entries (absent in entries logged before chaining existed).
CHIP_SEQ_FIELD = "chip_seq"
CHIP_PREV_FIELD = "chip_prev_leaf_hash_b64"
# Domain separation: a manifest signature can never be mistaken for a tree head signature.
MANIFEST_CONTEXT = b"lightfence-bundle-manifest-v1\x00"
MANIFEST_SIGNATURE_FIELD = "signature_b64"


class EvidenceFormatError(ProtocolError):
    """A value has no canonical JSON form (NaN, a non-string key, an object that is not JSON)."""


class SupportsToJson(Protocol):
    """geo/protocol values that serialise themselves (Licence, Assessment, CalibrationModel…)."""

    def to_json(self) -> dict[str, Any]: ...


class SolverInput(Protocol):
    """One landmark's input to the solver (geo's LandmarkRtt), as a verdict entry records it."""

    @property
    def landmark_id(self) -> str: ...
    @property
    def lat_deg(self) -> float: ...
    @property
    def lon_deg(self) -> float: ...
    @property
    def rtt_ms(self) -> float: ...


JsonSource = Mapping[str, Any] | SupportsToJson


def plain_json(value: Any, where: str = "$") -> Any:
    """A JSON-ready copy of ``value``: bytes become base64, tuples lists; NaN/inf refused.

    ``where`` is the JSON path named in the error."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise EvidenceFormatError(f"{where}: {value} has no canonical JSON form")
        return value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise EvidenceFormatError(f"{where}: object key {key!r} is not a string")
            out[key] = plain_json(item, f"{where}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [plain_json(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise EvidenceFormatError(f"{where}: {type(value).__name__} is not JSON data")


def canonical_json(value: Any) -> bytes:
    """The one byte form of a JSON value: sorted keys, no whitespace, ASCII, bytes as base64."""
    return json.dumps(
        plain_json(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
        allow_nan=False,
    ).encode("ascii")  # fmt: skip


def entry_leaf_hash(entry: Any) -> bytes:
    """The log's leaf hash of an entry (any JSON value): RFC 9162 leaf hash of its canonical
    JSON."""
    return leaf_hash(canonical_json(entry))


def chain_link(seq: int, previous_leaf_hash: bytes | None) -> dict[str, Any]:
    """The fields that make an entry the ``seq``-th link of its chip's chain (0 has no
    previous entry)."""
    return {
        CHIP_SEQ_FIELD: seq,
        CHIP_PREV_FIELD: None if previous_leaf_hash is None else to_b64(previous_leaf_hash),
    }


def manifest_message(manifest: Mapping[str, Any]) -> bytes:
    """The bytes a bundle manifest's signature covers: everything but the signature itself."""
    fields = {k: v for k, v in manifest.items() if k != MANIFEST_SIGNATURE_FIELD}
    return MANIFEST_CONTEXT + canonical_json(fields)


def _json_of(value: JsonSource, where: str) -> dict[str, Any]:
    raw = value if isinstance(value, Mapping) else value.to_json()
    return dict(plain_json(raw, where))


def _optional_json_of(value: JsonSource | None, where: str) -> dict[str, Any] | None:
    return None if value is None else _json_of(value, where)


def verdict_entry(
    *,
    chip_id: str,
    round_id: str,
    decided_unix_ns: int,
    verdict: str,
    chip_certificate: JsonSource,
    landmark_certificates: Sequence[JsonSource],
    records: Sequence[MeasurementRecord],
    inputs: Sequence[SolverInput],
    licence: JsonSource,
    params: Mapping[str, Any],
    solver_version: str,
    calibration: JsonSource | None,
    assessment: JsonSource | None,
    policy: Mapping[str, Any],
    ca_public_key: bytes | None,
    key_protection: str,
    reason_code: str | None,
    revocations: Sequence[Mapping[str, Any]],
) -> dict[str, Any]:
    """The body of a verdict entry (without its chain link). EvidenceFormatError when a value
    has no canonical form, so bad input is refused here, not when the entry is appended."""
    by_landmark: dict[str, dict[str, Any]] = {}
    for i, cert in enumerate(landmark_certificates):
        cert_json = _json_of(cert, f"landmark_certificates[{i}]")
        by_landmark[str(cert_json.get("landmark_id"))] = cert_json
    body = {
        "type": VERDICT_EVIDENCE_TYPE,
        "chip_id": chip_id,
        "round_id": round_id,
        "decided_unix_ns": int(decided_unix_ns),
        "verdict": str(verdict),
        "reason_code": reason_code,
        "key_protection": str(key_protection),
        "chip_certificate": _json_of(chip_certificate, "chip_certificate"),
        # Sorted by id so the evidence does not depend on the verifier's iteration order.
        "landmark_certificates": [by_landmark[k] for k in sorted(by_landmark)],
        "records": [r.to_json() for r in records],
        "inputs": [
            {
                "landmark_id": m.landmark_id,
                "lat_deg": float(m.lat_deg),
                "lon_deg": float(m.lon_deg),
                "rtt_ms": float(m.rtt_ms),
            }
            for m in inputs
        ],
        "licence": _json_of(licence, "licence"),
        "policy": plain_json(policy, "policy"),
        "solver": {
            "version": solver_version,
            "params": plain_json(params, "params"),
            "calibration": _optional_json_of(calibration, "calibration"),
        },
        "assessment": _optional_json_of(assessment, "assessment"),
        "ca_public_key_b64": None if ca_public_key is None else to_b64(ca_public_key),
        # protocol.revocation.Revocation JSON in force at the decision that names the chip or a
        # landmark of the round: the audit ignores records these revoke, as the verifier did.
        "revocations": plain_json(list(revocations), "revocations"),
    }
    canonical_json(body)
    return body


def alert_entry(
    alert: Mapping[str, Any], *, chip_id: str | None, time_unix_ns: int
) -> dict[str, Any]:
    """The body of an alert entry: the alert JSON as the verifier publishes it."""
    body = {
        "type": ALERT_EVIDENCE_TYPE,
        "chip_id": chip_id,
        "time_unix_ns": int(time_unix_ns),
        "alert": plain_json(alert, "alert"),
    }
    canonical_json(body)
    return body
