"""Evidence records for verdicts and alerts, and evidence bundles for offline audit.

An evidence record holds everything needed to recompute a verdict without trusting the
verifier: the chip certificate, the landmark certificates (keys and positions) in force, every
signed measurement record exactly as the landmark uploaded it (challenge and response datagrams
included), the licence, the policy, the solver version and parameters, and the verdict output.
Its canonical JSON bytes (sorted keys, no whitespace, bytes as base64, no NaN) are what the
transparency log hashes, so a record cannot change without changing its leaf hash.

A bundle gathers a chip's records over a time range with an inclusion proof for each against the
latest signed tree head, plus the earliest head covering them and a consistency proof from that
head to the latest (see docs/evidence.md for the format).
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from geo.measurement import LandmarkRtt
from lightfence import __version__
from protocol.codec import to_b64
from protocol.keys import Signer
from protocol.records import MeasurementRecord
from verifier.errors import InvalidInputError, NotFoundError
from verifier.translog import TransparencyLog

logger = logging.getLogger(__name__)

VERDICT_EVIDENCE_TYPE = "lightfence-verdict-evidence/1"
ALERT_EVIDENCE_TYPE = "lightfence-alert-evidence/1"
BUNDLE_FORMAT = "lightfence-evidence-bundle/1"


class SupportsToJson(Protocol):
    """geo/protocol values that serialise themselves (Licence, Assessment, CalibrationModel…)."""

    def to_json(self) -> dict[str, Any]: ...


JsonSource = Mapping[str, Any] | SupportsToJson


def _plain(value: Any, where: str) -> Any:
    """A JSON-ready copy of ``value``: bytes become base64, tuples lists; NaN/inf refused."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(f"{where}: {value} has no canonical JSON form")
        return value
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInputError(f"{where}: object key {key!r} is not a string")
            out[key] = _plain(item, f"{where}.{key}")
        return out
    if isinstance(value, list | tuple):
        return [_plain(item, f"{where}[{i}]") for i, item in enumerate(value)]
    raise InvalidInputError(f"{where}: {type(value).__name__} is not JSON data")


def canonical_json(value: Any) -> bytes:
    """The one byte form of a JSON value: sorted keys, no whitespace, ASCII, bytes as base64."""
    return json.dumps(
        _plain(value, "$"), sort_keys=True, separators=(",", ":"), ensure_ascii=True,
        allow_nan=False,
    ).encode("ascii")  # fmt: skip


def _json_of(value: JsonSource, where: str) -> dict[str, Any]:
    raw = value if isinstance(value, Mapping) else value.to_json()
    return dict(_plain(raw, where))


def _optional_json_of(value: JsonSource | None, where: str) -> dict[str, Any] | None:
    return None if value is None else _json_of(value, where)


@dataclass(frozen=True, slots=True)
class EvidenceRecord:
    """One log entry: ``body`` is hashed via `canonical_bytes`; the rest is index metadata."""

    kind: str  # "verdict" | "alert"
    chip_id: str | None
    time_unix_ns: int
    body: Mapping[str, Any]

    def canonical_bytes(self) -> bytes:
        return canonical_json(self.body)


def build_evidence(
    *,
    chip_id: str,
    round_id: str,
    decided_unix_ns: int,
    verdict: str,
    chip_certificate: JsonSource,
    landmark_certificates: Sequence[JsonSource],
    records: Sequence[MeasurementRecord],
    inputs: Sequence[LandmarkRtt],
    licence: JsonSource,
    params: object,
    calibration: JsonSource | None,
    assessment: JsonSource | None,
    policy: Mapping[str, Any],
    ca_public_key: bytes | None = None,
) -> EvidenceRecord:
    """Evidence for one verdict. ``params`` is the geo SolverParams (any dataclass or mapping)."""
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        params_json = dataclasses.asdict(params)
    elif isinstance(params, Mapping):
        params_json = dict(params)
    else:
        raise InvalidInputError("params must be the SolverParams dataclass or a mapping")
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
        "policy": _plain(policy, "policy"),
        "solver": {
            "version": __version__,
            "params": _plain(params_json, "params"),
            "calibration": _optional_json_of(calibration, "calibration"),
        },
        "assessment": _optional_json_of(assessment, "assessment"),
        "ca_public_key_b64": None if ca_public_key is None else to_b64(ca_public_key),
    }
    record = EvidenceRecord("verdict", chip_id, int(decided_unix_ns), body)
    record.canonical_bytes()  # refuse non-canonical input now, not when it is appended
    return record


def build_alert_evidence(
    alert: Mapping[str, Any], *, chip_id: str | None, time_unix_ns: int
) -> EvidenceRecord:
    """Evidence for an alert (the AlertOut JSON as the verifier publishes it)."""
    body = {
        "type": ALERT_EVIDENCE_TYPE,
        "chip_id": chip_id,
        "time_unix_ns": int(time_unix_ns),
        "alert": _plain(alert, "alert"),
    }
    record = EvidenceRecord("alert", chip_id, int(time_unix_ns), body)
    record.canonical_bytes()
    return record


def append_evidence(log: TransparencyLog, record: EvidenceRecord) -> int:
    """Append ``record`` to the log; returns its index. Durable when it returns."""
    index = log.append(
        record.canonical_bytes(),
        kind=record.kind,
        chip_id=record.chip_id,
        time_unix_ns=record.time_unix_ns,
    )
    logger.info("evidence %d logged: %s for chip %s", index, record.kind, record.chip_id)
    return index


def export_bundle(
    log: TransparencyLog,
    chip_id: str,
    from_unix_ns: int,
    to_unix_ns: int,
    *,
    signer: Signer | None = None,
    now_unix_s: int | None = None,
) -> dict[str, Any]:
    """A self-contained evidence bundle for ``chip_id`` over [from, to] (inclusive, ns).

    Proofs refer to the latest signed tree head. With ``signer`` (the log's key) and
    ``now_unix_s`` a fresh head is signed first, so every entry so far is covered; without, entries
    newer than the latest head are left out and counted in ``omitted_uncovered``.
    """
    if from_unix_ns > to_unix_ns:
        raise InvalidInputError(f"empty time range: from {from_unix_ns} > to {to_unix_ns}")
    if signer is not None:
        if now_unix_s is None:
            raise InvalidInputError("signing a fresh tree head needs now_unix_s")
        log.sign_tree_head(signer, now_unix_s)
    latest = log.latest_tree_head()
    if latest is None:
        raise NotFoundError("the log has no signed tree head yet; nothing can be proven")
    everything = log.find_entries(chip_id, from_unix_ns, to_unix_ns)
    covered = [e for e in everything if e.index < latest.tree_size]
    heads = [latest]
    consistency: list[dict[str, Any]] = []
    if covered:
        first = covered[0].index
        # The earliest head that already committed to the first entry: the consistency proof
        # from it to the latest head shows nothing in between was removed or rewritten.
        earliest = next(h for h in log.tree_heads() if h.tree_size > first)
        if earliest.tree_size < latest.tree_size:
            heads.insert(0, earliest)
            proof = log.consistency_proof(earliest.tree_size, latest.tree_size)
            consistency.append(
                {
                    "from_size": earliest.tree_size,
                    "to_size": latest.tree_size,
                    "proof_b64": [to_b64(h) for h in proof],
                }
            )
    entries = [
        {
            "index": e.index,
            "kind": e.kind,
            "entry": json.loads(e.entry),
            "inclusion_proof_b64": [
                to_b64(h) for h in log.inclusion_proof(e.index, latest.tree_size)
            ],
        }
        for e in covered
    ]
    logger.info(
        "exported %d entries for chip %s (%d newer than the latest tree head left out)",
        len(entries), chip_id, len(everything) - len(covered),
    )  # fmt: skip
    return {
        "format": BUNDLE_FORMAT,
        "chip_id": chip_id,
        "from_unix_ns": from_unix_ns,
        "to_unix_ns": to_unix_ns,
        "log_public_key_b64": to_b64(latest.log_public_key),
        "tree_heads": [h.to_json() for h in heads],
        "consistency_proofs": consistency,
        "entries": entries,
        "omitted_uncovered": len(everything) - len(covered),
    }
