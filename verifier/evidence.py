"""Evidence records for verdicts and alerts, the log append, and bundle export: the server side.

The format itself (entry types, canonical JSON, chain links, the manifest's signed bytes) is
`protocol.evidence_format`, shared with the offline auditor. An evidence record holds
everything needed to recompute a verdict without trusting the verifier: the chip certificate,
the landmark certificates (keys and positions) in force, every signed measurement record exactly
as the landmark uploaded it (challenge and response datagrams included), the licence, the
policy, the solver version and parameters, and the verdict output. Its canonical JSON bytes are
what the transparency log hashes, so a record cannot change without changing its leaf hash.

Each entry about a chip also carries the chip's sequence number and the leaf hash of the chip's
previous entry, assigned inside the append transaction, so a chip's entries form a hash chain.

A bundle gathers a contiguous run of a chip's chain over a time range with an inclusion proof for
each against the latest signed tree head, plus the earliest head covering them and a consistency
proof from that head to the latest, and a manifest signed with the log key that names the run's
first and last sequence numbers and the chip's latest entry, so nothing can be cut from either
end either (see docs/evidence.md for the format).
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from geo.version import SOLVER_VERSION
from protocol.codec import to_b64
from protocol.evidence_format import (
    BUNDLE_FORMAT,
    EvidenceFormatError,
    JsonSource,
    SolverInput,
    alert_entry,
    canonical_json,
    chain_link,
    manifest_message,
    verdict_entry,
)
from protocol.keys import Signer
from protocol.records import MeasurementRecord
from verifier.errors import InvalidInputError, NotFoundError
from verifier.translog import TransparencyLog

logger = logging.getLogger(__name__)


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
    inputs: Sequence[SolverInput],
    licence: JsonSource,
    params: object,
    calibration: JsonSource | None,
    assessment: JsonSource | None,
    policy: Mapping[str, Any],
    ca_public_key: bytes | None = None,
    key_protection: str = "software",
    reason_code: str | None = None,
    revocations: Sequence[Mapping[str, Any]] = (),
) -> EvidenceRecord:
    """Evidence for one verdict (`protocol.evidence_format.verdict_entry`). ``params`` is the
    geo SolverParams (any dataclass or mapping).

    ``key_protection`` is the chip certificate's level and ``reason_code`` the verdict's
    machine-readable reason (``untrusted_key`` when the key rule held a `verified` back); the
    policy's ``min_key_protection`` is the effective minimum the rule applied."""
    if dataclasses.is_dataclass(params) and not isinstance(params, type):
        params_json = dataclasses.asdict(params)
    elif isinstance(params, Mapping):
        params_json = dict(params)
    else:
        raise InvalidInputError("params must be the SolverParams dataclass or a mapping")
    try:
        body = verdict_entry(
            chip_id=chip_id, round_id=round_id, decided_unix_ns=decided_unix_ns,
            verdict=verdict, chip_certificate=chip_certificate,
            landmark_certificates=landmark_certificates, records=records, inputs=inputs,
            licence=licence, params=params_json, solver_version=SOLVER_VERSION,
            calibration=calibration, assessment=assessment, policy=policy,
            ca_public_key=ca_public_key, key_protection=key_protection,
            reason_code=reason_code, revocations=revocations,
        )  # fmt: skip
    except EvidenceFormatError as exc:
        raise InvalidInputError(str(exc)) from exc
    return EvidenceRecord("verdict", chip_id, int(decided_unix_ns), body)


def build_alert_evidence(
    alert: Mapping[str, Any], *, chip_id: str | None, time_unix_ns: int
) -> EvidenceRecord:
    """Evidence for an alert (the AlertOut JSON as the verifier publishes it)."""
    try:
        body = alert_entry(alert, chip_id=chip_id, time_unix_ns=time_unix_ns)
    except EvidenceFormatError as exc:
        raise InvalidInputError(str(exc)) from exc
    return EvidenceRecord("alert", chip_id, int(time_unix_ns), body)


def append_evidence(log: TransparencyLog, record: EvidenceRecord) -> int:
    """Append ``record`` to the log; returns its index. Durable when it returns.

    An entry about a chip is the next link of that chip's chain: its body gains the chip's
    sequence number and the previous entry's leaf hash before it is hashed.
    """
    if record.chip_id is None:
        index = log.append(
            record.canonical_bytes(), kind=record.kind, time_unix_ns=record.time_unix_ns
        )
        logger.info("evidence %d logged: %s", index, record.kind)
        return index

    def chained(seq: int, previous_leaf_hash: bytes | None) -> bytes:
        return canonical_json({**record.body, **chain_link(seq, previous_leaf_hash)})

    index, seq = log.append_chained(
        chained, kind=record.kind, chip_id=record.chip_id, time_unix_ns=record.time_unix_ns
    )
    logger.info(
        "evidence %d logged: %s for chip %s (seq %d)", index, record.kind, record.chip_id, seq
    )
    return index


def export_bundle(
    log: TransparencyLog,
    chip_id: str,
    from_unix_ns: int,
    to_unix_ns: int,
    *,
    signer: Signer | None,
    sign_fresh_head: bool = False,
    now_unix_s: int | None = None,
) -> dict[str, Any]:
    """A self-contained evidence bundle for ``chip_id`` over [from, to] (inclusive, ns).

    ``signer`` is the log's key: it signs the bundle's manifest (and, with ``sign_fresh_head``
    and ``now_unix_s``, a fresh tree head first, so every entry so far is covered; otherwise
    entries newer than the latest head are left out and counted in ``omitted_uncovered``).
    Proofs refer to the latest signed tree head. The chained entries form one contiguous run of
    the chip's chain: an entry inside the run whose time falls outside [from, to] (the clock
    stepped back) is included and the bundle's range widened to it.
    """
    if from_unix_ns > to_unix_ns:
        raise InvalidInputError(f"empty time range: from {from_unix_ns} > to {to_unix_ns}")
    if sign_fresh_head:
        if signer is None or now_unix_s is None:
            raise InvalidInputError("signing a fresh tree head needs the log key and now_unix_s")
        log.sign_tree_head(signer, now_unix_s)
    latest = log.latest_tree_head()
    if latest is None:
        raise NotFoundError("the log has no signed tree head yet; nothing can be proven")
    if signer is None:
        raise InvalidInputError("a bundle's manifest is signed with the log key; none given")
    if signer.public_key() != latest.log_public_key:
        raise InvalidInputError("the key given is not the log key that signed its tree heads")
    everything = log.find_entries(chip_id, from_unix_ns, to_unix_ns)
    covered = log.find_entries(chip_id, from_unix_ns, to_unix_ns, latest.tree_size)
    chained_seqs = [e.chip_seq for e in covered if e.chip_seq is not None]
    selected = [e for e in covered if e.chip_seq is None]
    if chained_seqs:
        selected += log.find_chain(chip_id, min(chained_seqs), max(chained_seqs), latest.tree_size)
    selected.sort(key=lambda e: e.index)
    times = [e.time_unix_ns for e in selected if e.time_unix_ns is not None]
    from_unix_ns, to_unix_ns = min([from_unix_ns, *times]), max([to_unix_ns, *times])
    heads = [latest]
    consistency: list[dict[str, Any]] = []
    if selected:
        first = selected[0].index
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
        for e in selected
    ]
    chip_head = log.chip_head(chip_id, latest.tree_size)
    manifest: dict[str, Any] = {
        "chip_id": chip_id,
        "from_unix_ns": from_unix_ns,
        "to_unix_ns": to_unix_ns,
        "tree_size": latest.tree_size,
        "root_b64": to_b64(latest.root),
        "entry_count": len(entries),
        "unchained_entries": sum(1 for e in selected if e.chip_seq is None),
        "first_seq": min(chained_seqs) if chained_seqs else None,
        "last_seq": max(chained_seqs) if chained_seqs else None,
        "head_seq": None if chip_head is None else chip_head.seq,
        "head_leaf_hash_b64": None if chip_head is None else to_b64(chip_head.leaf_hash),
    }
    manifest["signature_b64"] = to_b64(signer.sign(manifest_message(manifest)))
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
        "manifest": manifest,
    }
