"""Offline audit of an evidence bundle: trusts the bundle for nothing it can check.

Needs no network and no verifier database. Every check that fails becomes a `Finding` naming the
log entry, the JSON path of the field, what was expected and what was found; the audit carries on
so one report lists every problem. Checks, per bundle:

- keys: the CA and log keys must be pinned (``ca_public_key``, ``log_public_key``); one taken
  from the bundle is a finding unless ``allow_unpinned``;
- tree heads: Ed25519 signature by the log key, sizes and times in order, consistency proof
  between consecutive heads;
- entries: canonical bytes hash into the latest head via the inclusion proof; indices strictly
  increasing; chip and time inside the exported range; not decided after the head that logs it;
- completeness (`audit.completeness`): the chip's hash chain runs without gap, repeat or
  reordering, and the manifest signed with the log key vouches for both ends;
- per verdict: CA signature and validity of the chip and landmark certificates; for each
  measurement record the landmark signature over the record, the landmark signature over the
  challenge datagram, the chip signature over that exact challenge, the nonce/landmark/chip
  bindings between record, challenge and response, freshness (issued <= sent < expiry, answer
  before expiry, before the verdict, at most `audit.parameters.MAX_RECORD_AGE_S` old) and nonce
  uniqueness; each solver input backed by a valid record (same landmark, same RTT) at the
  certified position; finally the sound region and verdict recomputed with
  ``geo.robust.assess_tolerating`` (the policy's ``tolerate_faulty_landmarks``; absent means 0,
  i.e. ``geo.verdict.assess``) with the parameters the audit owns (`audit.parameters`: any other
  value in the entry is a finding) and compared with what was stored;
- the key rule (``protocol.key_protection.key_rule``): the key protection the CA signed into the
  chip certificate against the policy's ``min_key_protection`` (absent: software, the rule before
  it existed; raised to ``min_key_protection`` when the auditor pins one): a `verified` earned by
  a key below the minimum is a finding, and so is an ``untrusted_key`` the rule does not back.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from audit.completeness import check_completeness
from audit.parameters import MAX_RECORD_AGE_S, audit_params, record_too_old
from lightfence import __version__
from protocol.certs import ChipCertificate, LandmarkCertificate
from protocol.codec import from_b64
from protocol.codec import to_b64 as _b64
from protocol.errors import CertificateError, ProtocolError, SignatureError
from protocol.key_protection import (
    LEGACY_KEY_PROTECTION,
    UNTRUSTED_KEY,
    check_level,
    key_rule,
    stronger,
)
from protocol.keys import PUBLIC_KEY_BYTES, verify_signature
from protocol.merkle import (
    HASH_SIZE,
    MerkleProofError,
    SignedTreeHead,
    leaf_hash,
    verify_consistency,
    verify_inclusion,
)
from protocol.records import MeasurementRecord
from protocol.revocation import Revocation, revoked_by
from protocol.wire import (
    decode_challenge,
    decode_response,
    nonce_commitment,
    response_signed_bytes,
)
from verifier.evidence import (
    ALERT_EVIDENCE_TYPE,
    BUNDLE_FORMAT,
    VERDICT_EVIDENCE_TYPE,
    canonical_json,
)

NS_PER_S = 1_000_000_000
# Format /1 bundles are still read, and fail `manifest.missing`: they cannot prove completeness.
_READABLE_FORMATS = (BUNDLE_FORMAT, "lightfence-evidence-bundle/1")
# Positions and RTTs are copied, never recomputed, so they must agree to float rounding only.
_POSITION_TOLERANCE_DEG = 1e-9
_RTT_TOLERANCE_MS = 1e-9
# Recomputed areas may differ by floating-point summation order only.
_AREA_RELATIVE_TOLERANCE = 1e-6
_FRACTION_TOLERANCE = 1e-6
# Stored coordinates are rounded to 1e-6 deg (geo.verdict.geojson): a recomputed vertex a float
# rounding away from the stored one may round to the neighbouring step, moving it by up to
# sqrt(2) x 1e-6 deg (0.16 m), so the symmetric difference may hold a strip that wide along the
# boundary. Physically nothing (the solver's FLOAT_MARGIN_KM is 10 m); verdicts stay exact.
_ROUNDING_STRIP_DEG = math.sqrt(2.0) * 1e-6


class AuditError(Exception):
    """The bundle cannot be audited at all (unreadable, not a bundle); the message says why."""


@dataclass(frozen=True, slots=True)
class Finding:
    check: str  # e.g. "record.landmark_signature"
    where: str  # JSON path inside the bundle
    message: str
    entry_index: int | None = None  # log index of the entry concerned
    expected: Any = None
    found: Any = None

    def to_json(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "where": self.where,
            "entry_index": self.entry_index,
            "message": self.message,
            "expected": self.expected,
            "found": self.found,
        }


@dataclass(slots=True)
class _Audit:
    allow_unpinned: bool = False
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            (
                "entries",
                "verdicts",
                "alerts",
                "records",
                "signatures",
                "tree_heads",
                "recomputed_verdicts",
            ),
            0,
        )
    )

    def fail(
        self,
        check: str,
        where: str,
        message: str,
        *,
        entry: int | None = None,
        expected: Any = None,
        found: Any = None,
    ) -> None:
        self.findings.append(Finding(check, where, message, entry, expected, found))


@dataclass(frozen=True, slots=True)
class AuditReport:
    findings: tuple[Finding, ...]
    counts: Mapping[str, int]
    notes: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "counts": dict(self.counts),
            "findings": [f.to_json() for f in self.findings],
            "notes": list(self.notes),
        }


def verify_bundle(
    bundle: Any,
    *,
    ca_public_key: bytes | None = None,
    log_public_key: bytes | None = None,
    min_key_protection: str | None = None,
    allow_unpinned: bool = False,
    revocations: Sequence[Revocation] = (),
) -> AuditReport:
    """Audit ``bundle`` (the parsed JSON). Pinned keys, when given, override the bundle's;
    ``min_key_protection``, when given, is the least key protection the auditor accepts for a
    `verified`, whatever minimum the verifier's policy stated. ``revocations`` (e.g. the
    verifier's `GET /v1/revocations`, obtained independently) apply on top of those each
    verdict entry carries.

    A key the audit needs but was not given is taken from the bundle, which a forger writes
    too: that is a finding (`log.unpinned`, `ca.unpinned`) unless ``allow_unpinned`` asks for
    such a look explicitly (then a note).
    """
    if min_key_protection is not None:
        try:
            check_level(min_key_protection, "min_key_protection")
        except CertificateError as exc:
            raise AuditError(str(exc)) from exc
    audit = _Audit(allow_unpinned=allow_unpinned)
    if not isinstance(bundle, Mapping) or bundle.get("format") not in _READABLE_FORMATS:
        raise AuditError(f"not an evidence bundle (format must be {BUNDLE_FORMAT!r})")
    latest = _check_log(audit, bundle, log_public_key)
    chip_id = bundle.get("chip_id")
    entries = bundle.get("entries")
    if not isinstance(entries, list):
        audit.fail("bundle.format", "entries", "entries must be a list")
        entries = []
    if bundle.get("omitted_uncovered"):
        audit.notes.append(
            f"{bundle['omitted_uncovered']} entries in the range were newer than the latest "
            "signed tree head and are not in this bundle"
        )
    nonces: dict[bytes, str] = {}
    previous_index = -1
    for k, item in enumerate(entries):
        where = f"entries[{k}]"
        if not isinstance(item, Mapping) or type(item.get("index")) is not int:
            audit.fail("entry.format", where, "an entry needs an integer index and the entry JSON")
            continue
        index = int(item["index"])
        audit.counts["entries"] += 1
        if index <= previous_index:
            audit.fail(
                "entry.order",
                f"{where}.index",
                "entry indices must strictly increase",
                entry=index,
                expected=f"> {previous_index}",
                found=index,
            )
        previous_index = index
        entry = item.get("entry")
        if latest is not None:
            _check_inclusion(audit, where, index, item, latest)
        if not isinstance(entry, Mapping):
            audit.fail("entry.format", f"{where}.entry", "entry must be a JSON object", entry=index)
            continue
        _check_entry_scope(audit, where, index, entry, bundle=bundle, head=latest)
        if entry.get("type") == VERDICT_EVIDENCE_TYPE:
            audit.counts["verdicts"] += 1
            _check_verdict(
                audit,
                f"{where}.entry",
                index,
                entry,
                chip_id=chip_id,
                pinned_ca=ca_public_key,
                nonces=nonces,
                pinned_min_key=min_key_protection,
                pinned_revocations=revocations,
            )
        elif entry.get("type") == ALERT_EVIDENCE_TYPE:
            audit.counts["alerts"] += 1
        else:
            audit.fail(
                "entry.type",
                f"{where}.entry.type",
                "unknown evidence type",
                entry=index,
                expected=[VERDICT_EVIDENCE_TYPE, ALERT_EVIDENCE_TYPE],
                found=entry.get("type"),
            )
    check_completeness(
        bundle,
        entries,
        latest,
        _log_key(bundle, log_public_key),
        fail=audit.fail,
        note=audit.notes.append,
    )
    return AuditReport(tuple(audit.findings), dict(audit.counts), tuple(audit.notes))


def _log_key(bundle: Mapping[str, Any], pinned: bytes | None) -> bytes | None:
    """The key that must have signed the manifest (as for the tree heads: pinned, else named)."""
    if pinned is not None:
        return pinned
    try:
        return from_b64(bundle.get("log_public_key_b64"), "log_public_key_b64", PUBLIC_KEY_BYTES)
    except ProtocolError:
        return None  # already a `log.key` finding


# --- the log: tree heads, consistency, inclusion -------------------------------------------


def _check_log(
    audit: _Audit, bundle: Mapping[str, Any], pinned_key: bytes | None
) -> SignedTreeHead | None:
    try:
        bundle_key = from_b64(bundle.get("log_public_key_b64"), "log_public_key_b64", 32)
    except ProtocolError as exc:
        audit.fail("log.key", "log_public_key_b64", str(exc))
        return None
    if pinned_key is not None and pinned_key != bundle_key:
        audit.fail(
            "log.key",
            "log_public_key_b64",
            "the bundle names a different log key than pinned",
            expected=_b64(pinned_key),
            found=_b64(bundle_key),
        )
    key = bundle_key if pinned_key is None else pinned_key
    if pinned_key is None:
        _unpinned(audit, "log", "log_public_key_b64", "--log-key")
    raw_heads = bundle.get("tree_heads")
    if not isinstance(raw_heads, list) or not raw_heads:
        audit.fail("tree_head.missing", "tree_heads", "the bundle has no signed tree head")
        return None
    heads: list[SignedTreeHead] = []
    for i, raw in enumerate(raw_heads):
        where = f"tree_heads[{i}]"
        try:
            head = SignedTreeHead.from_json(raw)
        except ProtocolError as exc:
            audit.fail("tree_head.format", where, str(exc))
            continue
        audit.counts["tree_heads"] += 1
        try:
            head.verify(key)
            audit.counts["signatures"] += 1
        except SignatureError:
            audit.fail(
                "tree_head.signature",
                f"{where}.signature_b64",
                f"tree head of size {head.tree_size} is not signed by the log key",
                expected=_b64(key),
                found=_b64(head.log_public_key),
            )
        if heads and (
            head.tree_size < heads[-1].tree_size
            or head.timestamp_unix_s < heads[-1].timestamp_unix_s
        ):
            audit.fail(
                "tree_head.order",
                where,
                "tree heads must be oldest first, growing",
                expected=f"size >= {heads[-1].tree_size}, time >= {heads[-1].timestamp_unix_s}",
                found=f"size {head.tree_size}, time {head.timestamp_unix_s}",
            )
        heads.append(head)
    if not heads:
        return None
    proofs = bundle.get("consistency_proofs")
    proofs = proofs if isinstance(proofs, list) else []
    for i in range(len(heads) - 1):
        old, new = heads[i], heads[i + 1]
        match = [
            (j, p)
            for j, p in enumerate(proofs)
            if isinstance(p, Mapping)
            and p.get("from_size") == old.tree_size
            and p.get("to_size") == new.tree_size
        ]
        if not match:
            audit.fail(
                "consistency.missing",
                "consistency_proofs",
                f"no consistency proof from tree size {old.tree_size} to {new.tree_size}",
            )
            continue
        j, proof_json = match[0]
        where = f"consistency_proofs[{j}].proof_b64"
        try:
            proof = _hashes(proof_json.get("proof_b64"), where)
            verify_consistency(old.tree_size, new.tree_size, old.root, new.root, proof)
        except ProtocolError as exc:
            audit.fail(
                "consistency.proof",
                where,
                f"tree head {new.tree_size} does not extend tree head {old.tree_size}: {exc}",
            )
    return heads[-1]


def _check_inclusion(
    audit: _Audit, where: str, index: int, item: Mapping[str, Any], head: SignedTreeHead
) -> None:
    try:
        leaf = leaf_hash(canonical_json(item.get("entry")))
        proof = _hashes(item.get("inclusion_proof_b64"), f"{where}.inclusion_proof_b64")
        verify_inclusion(index, head.tree_size, leaf, proof, head.root)
    except (ProtocolError, ValueError) as exc:
        audit.fail(
            "entry.inclusion",
            f"{where}.inclusion_proof_b64",
            f"entry {index} is not in the log at the signed tree head of size "
            f"{head.tree_size}: {exc}",
            entry=index,
        )


def _check_entry_scope(
    audit: _Audit,
    where: str,
    index: int,
    entry: Mapping[str, Any],
    *,
    bundle: Mapping[str, Any],
    head: SignedTreeHead | None,
) -> None:
    if entry.get("chip_id") != bundle.get("chip_id"):
        audit.fail(
            "entry.chip",
            f"{where}.entry.chip_id",
            "entry is about another chip",
            entry=index,
            expected=bundle.get("chip_id"),
            found=entry.get("chip_id"),
        )
    time_key = "decided_unix_ns" if entry.get("type") == VERDICT_EVIDENCE_TYPE else "time_unix_ns"
    time_ns = entry.get(time_key)
    if type(time_ns) is not int:
        audit.fail(
            "entry.time", f"{where}.entry.{time_key}", "time must be an integer", entry=index
        )
        return
    lo, hi = bundle.get("from_unix_ns"), bundle.get("to_unix_ns")
    if not (isinstance(lo, int) and isinstance(hi, int) and lo <= time_ns <= hi):
        audit.fail(
            "entry.time",
            f"{where}.entry.{time_key}",
            "entry lies outside the exported range",
            entry=index,
            expected=f"[{lo}, {hi}]",
            found=time_ns,
        )
    # A head signed at second t covers only what existed by then: a later time means backdating.
    if head is not None and time_ns >= (head.timestamp_unix_s + 1) * NS_PER_S:
        audit.fail(
            "entry.time",
            f"{where}.entry.{time_key}",
            "entry claims a time after the tree head that logs it was signed",
            entry=index,
            expected=f"< {(head.timestamp_unix_s + 1) * NS_PER_S}",
            found=time_ns,
        )


# --- one verdict: certificates, records, inputs, recomputation -----------------------------


def _check_verdict(
    audit: _Audit,
    where: str,
    index: int,
    entry: Mapping[str, Any],
    *,
    chip_id: Any,
    pinned_ca: bytes | None,
    nonces: dict[bytes, str],
    pinned_min_key: str | None = None,
    pinned_revocations: Sequence[Revocation] = (),
) -> None:
    decided_ns = entry.get("decided_unix_ns")
    decided_ns = decided_ns if isinstance(decided_ns, int) else 0
    ca = _ca_key(audit, where, index, entry, pinned_ca)
    chip = _chip_certificate(
        audit, where, index, entry, chip_id=chip_id, ca=ca, decided_ns=decided_ns
    )
    landmarks = _landmark_certificates(audit, where, index, entry, ca=ca, decided_ns=decided_ns)
    raw_records = entry.get("records")
    if not isinstance(raw_records, list):
        audit.fail("entry.format", f"{where}.records", "records must be a list", entry=index)
        raw_records = []
    valid: list[MeasurementRecord] = []
    for i, raw in enumerate(raw_records):
        audit.counts["records"] += 1
        record = _check_record(
            audit,
            f"{where}.records[{i}]",
            index,
            raw,
            chip=chip,
            landmarks=landmarks,
            chip_id=chip_id,
            decided_ns=decided_ns,
            nonces=nonces,
        )
        if record is not None and not _revoked(
            audit, f"{where}.records[{i}]", index, record,
            chip=chip, landmarks=landmarks, decided_ns=decided_ns,
            revocations=[*_entry_revocations(audit, where, index, entry), *pinned_revocations],
        ):  # fmt: skip
            valid.append(record)
    inputs = _check_inputs(audit, where, index, entry, landmarks=landmarks, valid=valid)
    key_level = chip.key_protection if chip is not None else LEGACY_KEY_PROTECTION
    _check_key_level(audit, where, index, entry, key_level)
    _recompute(audit, where, index, entry, inputs, key_level=key_level,
               pinned_min_key=pinned_min_key)


def _entry_revocations(
    audit: _Audit, where: str, index: int, entry: Mapping[str, Any]
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


def _revoked(
    audit: _Audit,
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


def _ca_signed(cert: ChipCertificate | LandmarkCertificate, ca: bytes) -> None:
    """The CA's signature only: validity is judged per record at its send time (the
    verifier's rule), so a certificate that expired after the measurement still backs it."""
    try:
        verify_signature(ca, cert.signed_bytes(), cert.ca_signature)
    except SignatureError as exc:
        raise CertificateError("certificate not signed by the CA") from exc


def _ca_key(
    audit: _Audit, where: str, index: int, entry: Mapping[str, Any], pinned: bytes | None
) -> bytes | None:
    stated = entry.get("ca_public_key_b64")
    if pinned is not None:
        if stated is not None and stated != _b64(pinned):
            audit.fail(
                "ca.key",
                f"{where}.ca_public_key_b64",
                "the verifier trusted a different CA than the one pinned",
                entry=index,
                expected=_b64(pinned),
                found=stated,
            )
        return pinned
    if stated is None:
        audit.fail(
            "ca.key",
            f"{where}.ca_public_key_b64",
            "no CA key in the evidence and none pinned (--ca); certificates cannot be checked",
            entry=index,
        )
        return None
    _unpinned(audit, "ca", f"{where}.ca_public_key_b64", "--ca")
    try:
        return from_b64(stated, "ca_public_key_b64", PUBLIC_KEY_BYTES)
    except ProtocolError as exc:
        audit.fail("ca.key", f"{where}.ca_public_key_b64", str(exc), entry=index)
        return None


def _unpinned(audit: _Audit, key: str, where: str, option: str) -> None:
    """A key taken from the bundle: a finding (once), or a note when asked for explicitly."""
    text = f"{key} key taken from the bundle, which a forger writes too; pin it with {option}"
    if audit.allow_unpinned:
        if text not in audit.notes:
            audit.notes.append(text)
    elif not any(f.check == f"{key}.unpinned" for f in audit.findings):
        audit.fail(f"{key}.unpinned", where, text)


def _chip_certificate(
    audit: _Audit,
    where: str,
    index: int,
    entry: Mapping[str, Any],
    *,
    chip_id: Any,
    ca: bytes | None,
    decided_ns: int,
) -> ChipCertificate | None:
    path = f"{where}.chip_certificate"
    try:
        cert = ChipCertificate.from_json(entry.get("chip_certificate"))
    except ProtocolError as exc:
        audit.fail("chip_certificate.format", path, str(exc), entry=index)
        return None
    if cert.chip_id != chip_id or entry.get("chip_id") != chip_id:
        audit.fail(
            "chip_certificate.chip",
            f"{path}.chip_id",
            "certificate is for another chip",
            entry=index,
            expected=chip_id,
            found=cert.chip_id,
        )
    if ca is not None:
        try:
            _ca_signed(cert, ca)
            audit.counts["signatures"] += 1
        except ProtocolError as exc:
            audit.fail("chip_certificate.ca", f"{path}.ca_signature_b64", str(exc), entry=index)
    return cert


def _landmark_certificates(
    audit: _Audit,
    where: str,
    index: int,
    entry: Mapping[str, Any],
    *,
    ca: bytes | None,
    decided_ns: int,
) -> dict[str, LandmarkCertificate]:
    raw = entry.get("landmark_certificates")
    if not isinstance(raw, list):
        audit.fail("entry.format", f"{where}.landmark_certificates", "must be a list", entry=index)
        return {}
    certs: dict[str, LandmarkCertificate] = {}
    for i, item in enumerate(raw):
        path = f"{where}.landmark_certificates[{i}]"
        try:
            cert = LandmarkCertificate.from_json(item)
        except ProtocolError as exc:
            audit.fail("landmark_certificate.format", path, str(exc), entry=index)
            continue
        if cert.landmark_id in certs:
            audit.fail(
                "landmark_certificate.duplicate",
                f"{path}.landmark_id",
                "two certificates for one landmark",
                entry=index,
                expected=None,
                found=cert.landmark_id,
            )
        if ca is not None:
            try:
                _ca_signed(cert, ca)
                audit.counts["signatures"] += 1
            except ProtocolError as exc:
                audit.fail(
                    "landmark_certificate.ca", f"{path}.ca_signature_b64", str(exc), entry=index
                )
        certs[cert.landmark_id] = cert
    return certs


def _check_record(
    audit: _Audit,
    where: str,
    index: int,
    raw: Any,
    *,
    chip: ChipCertificate | None,
    landmarks: Mapping[str, LandmarkCertificate],
    chip_id: Any,
    decided_ns: int,
    nonces: dict[bytes, str],
) -> MeasurementRecord | None:
    """Return the record when every check passes, else None (with findings recorded)."""
    try:
        record = MeasurementRecord.from_json(raw)
    except ProtocolError as exc:
        audit.fail("record.format", where, str(exc), entry=index)
        return None
    ok = True

    def fail(
        check: str, field_name: str, message: str, expected: Any = None, found: Any = None
    ) -> None:
        nonlocal ok
        ok = False
        audit.fail(
            check, f"{where}.{field_name}", message, entry=index, expected=expected, found=found
        )

    if record.target_kind != "chip" or record.target_id != chip_id:
        fail(
            "record.target",
            "target_id",
            "record measures another target",
            f"chip {chip_id}",
            f"{record.target_kind} {record.target_id}",
        )
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
        _signature(
            record.signed_bytes(),
            record.signature,
            landmark.public_key,
            audit=audit,
            fail=fail,
            check="record.landmark_signature",
            field_name="signature_b64",
            text=f"landmark {record.landmark_id} did not sign this record",
        )
        sent_s = record.sent_unix_ns // NS_PER_S
        if not landmark.not_before_unix_s <= sent_s <= landmark.not_after_unix_s:
            fail(
                "landmark_certificate.validity",
                "sent_unix_ns",
                "measured outside the landmark certificate's validity",
                f"[{landmark.not_before_unix_s}, {landmark.not_after_unix_s}] s",
                sent_s,
            )
    previous = nonces.get(record.nonce)
    if previous is not None:
        fail(
            "record.replay",
            "nonce_b64",
            f"nonce already used by {previous}",
            "a fresh nonce",
            _b64(record.nonce),
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
        ("nonce_b64", _b64(commitment), _b64(challenge.commitment)),
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
            _b64(record.nonce),
            _b64(response.nonce),
        )
    if chip is not None:
        _signature(
            response_signed_bytes(record.challenge, response.nonce),
            response.signature,
            chip.public_key,
            audit=audit,
            fail=fail,
            check="response.chip_signature",
            field_name="response_b64",
            text=f"chip {chip.chip_id} did not sign this exact challenge",
        )
        sent_s = record.sent_unix_ns // NS_PER_S
        if not chip.not_before_unix_s <= sent_s <= chip.not_after_unix_s:
            fail(
                "chip_certificate.validity",
                "sent_unix_ns",
                "measured outside the chip certificate's validity",
                f"[{chip.not_before_unix_s}, {chip.not_after_unix_s}] s",
                sent_s,
            )
    else:
        ok = False
    return record if ok else None


def _signature(
    message: bytes,
    signature: bytes,
    key: bytes,
    *,
    audit: _Audit,
    fail: Any,
    check: str,
    field_name: str,
    text: str,
) -> None:
    try:
        verify_signature(key, message, signature)
        audit.counts["signatures"] += 1
    except SignatureError:
        fail(check, field_name, text)


def _check_inputs(
    audit: _Audit,
    where: str,
    index: int,
    entry: Mapping[str, Any],
    *,
    landmarks: Mapping[str, LandmarkCertificate],
    valid: Sequence[MeasurementRecord],
) -> list[tuple[str, float, float, float]]:
    raw = entry.get("inputs")
    if not isinstance(raw, list):
        audit.fail("entry.format", f"{where}.inputs", "inputs must be a list", entry=index)
        return []
    inputs: list[tuple[str, float, float, float]] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        path = f"{where}.inputs[{i}]"
        try:
            landmark_id = str(item["landmark_id"])
            lat, lon, rtt = (float(item[k]) for k in ("lat_deg", "lon_deg", "rtt_ms"))
        except (KeyError, TypeError, ValueError):
            audit.fail(
                "input.format", path, "needs landmark_id, lat_deg, lon_deg, rtt_ms", entry=index
            )
            continue
        inputs.append((landmark_id, lat, lon, rtt))
        if landmark_id in seen:
            audit.fail(
                "input.duplicate",
                f"{path}.landmark_id",
                "landmark used twice",
                entry=index,
                expected=None,
                found=landmark_id,
            )
        seen.add(landmark_id)
        cert = landmarks.get(landmark_id)
        if cert is None:
            audit.fail(
                "input.landmark",
                f"{path}.landmark_id",
                "no certificate for this landmark in the evidence",
                entry=index,
                expected=None,
                found=landmark_id,
            )
        elif (
            abs(cert.lat_deg - lat) > _POSITION_TOLERANCE_DEG
            or abs(cert.lon_deg - lon) > _POSITION_TOLERANCE_DEG
        ):
            audit.fail(
                "input.position",
                f"{path}.lat_deg",
                f"landmark {landmark_id} position differs from its certificate",
                entry=index,
                expected=[cert.lat_deg, cert.lon_deg],
                found=[lat, lon],
            )
        backing = [r.rtt_ns / 1e6 for r in valid if r.landmark_id == landmark_id]
        if not any(abs(ms - rtt) <= _RTT_TOLERANCE_MS for ms in backing):
            audit.fail(
                "input.rtt",
                f"{path}.rtt_ms",
                f"RTT not backed by a valid signed record of landmark {landmark_id}",
                entry=index,
                expected=backing,
                found=rtt,
            )
    return inputs


def _recompute(
    audit: _Audit,
    where: str,
    index: int,
    entry: Mapping[str, Any],
    inputs: Sequence[tuple[str, float, float, float]],
    *,
    key_level: str = LEGACY_KEY_PROTECTION,
    pinned_min_key: str | None = None,
) -> None:
    """Apply the verifier's decision rule to the checked inputs and compare with what it stored.

    The rule (verifier.verdicts.decide): a round with no valid signed answer can only be `dark`
    or `inconclusive` (no_answer; which one depends on the chip's last answer before the round,
    outside the entry); otherwise `geo.robust.assess_tolerating`
    decides with the policy's `tolerate_faulty_landmarks` (absent in bundles written before the
    field existed: 0, which is `geo.verdict.assess`), and when it cannot (a GeoError, e.g. fewer
    than f + 2 landmarks) or has no licence to compare with, the verdict is `inconclusive`,
    never `verified`. Last, the key rule may hold a geometric `verified` back as `inconclusive`
    (reason `untrusted_key`); the stored assessment then still says `verified`.
    """
    stored_verdict = entry.get("verdict")
    stored = entry.get("assessment")
    held_back = (entry.get("reason_code") == UNTRUSTED_KEY and stored_verdict == "inconclusive"
                 and isinstance(stored, Mapping) and stored.get("verdict") == "verified")
    # An assessment without a verdict (no licence given) backs an `inconclusive`.
    if (isinstance(stored, Mapping) and stored.get("verdict") not in (stored_verdict, None)
            and not held_back):
        audit.fail(
            "verdict.stored",
            f"{where}.verdict",
            "verdict disagrees with its assessment",
            entry=index,
            expected=stored.get("verdict"),
            found=stored_verdict,
        )
    if not inputs:
        audit.counts["recomputed_verdicts"] += 1
        if stored_verdict not in ("dark", "inconclusive"):
            audit.fail(
                "verdict.recomputed",
                f"{where}.verdict",
                "with no valid signed measurement the verdict is dark or inconclusive",
                entry=index,
                expected="dark or inconclusive",
                found=stored_verdict,
            )
        if stored is not None:
            audit.fail(
                "assessment.recomputed",
                f"{where}.assessment",
                "a verdict without inputs has no assessment",
                entry=index,
                expected=None,
                found=_short(stored),
            )
        return
    if stored_verdict == "dark":
        audit.fail(
            "verdict.dark",
            f"{where}.inputs",
            "a dark verdict rests on no input",
            entry=index,
            expected=[],
            found=[i[0] for i in inputs],
        )
        return
    solver = entry.get("solver")
    solver = solver if isinstance(solver, Mapping) else {}
    if solver.get("version") != __version__:
        audit.notes.append(
            f"entry {index}: decided by solver {solver.get('version')}, recomputed with "
            f"{__version__}"
        )
    from geo.errors import GeoError

    policy = entry.get("policy")
    faulty = policy.get("tolerate_faulty_landmarks", 0) if isinstance(policy, Mapping) else 0
    if isinstance(faulty, bool) or not isinstance(faulty, int) or not 0 <= faulty <= 2:
        audit.fail(
            "verdict.recompute",
            f"{where}.policy.tolerate_faulty_landmarks",
            "cannot recompute the verdict: tolerate_faulty_landmarks must be 0, 1 or 2",
            entry=index,
            found=_short(faulty),
        )
        return
    params = audit_params(where, index, entry, audit.fail)
    try:
        from geo.calibration import CalibrationModel
        from geo.licence import licence_from_json
        from geo.measurement import LandmarkRtt
        from geo.robust import assess_tolerating
        measurements = [LandmarkRtt(*i) for i in inputs]
        licence = licence_from_json(entry.get("licence") or {})
        calibration_json = solver.get("calibration")
        calibration = (
            None if calibration_json is None else CalibrationModel.from_json(calibration_json)
        )
    except Exception as exc:  # the auditor reports any failure to recompute, never crashes
        audit.fail(
            "verdict.recompute",
            f"{where}.solver",
            f"cannot recompute the verdict: {type(exc).__name__}: {exc}",
            entry=index,
        )
        return
    result = None
    try:
        result = assess_tolerating(measurements, licence, calibration, params, faulty)
    except GeoError:
        pass  # the verifier's rule: no geo verdict is inconclusive (checked below)
    except Exception as exc:  # the auditor reports any failure to recompute, never crashes
        audit.fail(
            "verdict.recompute",
            f"{where}.solver",
            f"cannot recompute the verdict: {type(exc).__name__}: {exc}",
            entry=index,
        )
        return
    audit.counts["recomputed_verdicts"] += 1
    expected_verdict = (
        "inconclusive" if result is None or result.verdict is None else result.verdict.value
    )
    minimum = _min_key_protection(audit, where, index, policy, pinned_min_key)
    expected_verdict, expected_code = key_rule(expected_verdict, key_level, minimum)
    if entry.get("reason_code") != expected_code:
        audit.fail(
            "verdict.key_rule",
            f"{where}.reason_code",
            f"the key rule ({key_level} key, minimum {minimum}) gives reason "
            f"{expected_code!r}",
            entry=index,
            expected=expected_code,
            found=entry.get("reason_code"),
        )
    if expected_verdict != stored_verdict:
        audit.fail(
            "verdict.recomputed",
            f"{where}.verdict",
            "recomputed verdict differs from the stored one",
            entry=index,
            expected=expected_verdict,
            found=stored_verdict,
        )
    if result is None:
        if stored is not None:
            audit.fail(
                "assessment.recomputed",
                f"{where}.assessment",
                "the solver gives no assessment for these inputs",
                entry=index,
                expected=None,
                found=_short(stored),
            )
        return
    if not isinstance(stored, Mapping):
        audit.fail("assessment.missing", f"{where}.assessment", "no stored assessment", entry=index)
        return
    for key, value in result.to_json().items():
        if not _same(value, stored.get(key)):
            audit.fail(
                "assessment.recomputed",
                f"{where}.assessment.{key}",
                f"recomputed {key} differs from the stored one",
                entry=index,
                expected=_short(value),
                found=_short(stored.get(key)),
            )


def _check_key_level(
    audit: _Audit, where: str, index: int, entry: Mapping[str, Any], key_level: str
) -> None:
    """The level the evidence states must be the one the CA signed into the certificate (a
    verifier that wrote a stronger level than the certificate's would hide a software key)."""
    stated = entry.get("key_protection", LEGACY_KEY_PROTECTION)
    if stated != key_level:
        audit.fail(
            "key_protection.stated",
            f"{where}.key_protection",
            "the evidence states another key protection than the chip certificate",
            entry=index,
            expected=key_level,
            found=_short(stated),
        )


def _min_key_protection(
    audit: _Audit, where: str, index: int, policy: Any, pinned: str | None
) -> str:
    """The minimum the key rule is recomputed with: the policy's (software when absent, as
    before the field existed), raised to the auditor's pinned minimum when that is stricter."""
    stated = policy.get("min_key_protection") if isinstance(policy, Mapping) else None
    minimum = LEGACY_KEY_PROTECTION
    if stated is not None:
        try:
            minimum = check_level(stated, "min_key_protection")
        except CertificateError as exc:
            audit.fail("policy.min_key_protection", f"{where}.policy.min_key_protection",
                       str(exc), entry=index, found=_short(stated))
    if pinned is not None and stronger(minimum, pinned) != minimum:
        audit.fail(
            "policy.min_key_protection",
            f"{where}.policy.min_key_protection",
            "the verifier applied a weaker key minimum than the one pinned (--min-key-protection)",
            entry=index,
            expected=pinned,
            found=minimum,
        )
        minimum = pinned
    return minimum


def _same(expected: Any, found: Any) -> bool:
    if isinstance(expected, bool) or isinstance(found, bool):
        return bool(expected == found)
    if isinstance(expected, int | float) and isinstance(found, int | float):
        scale = max(1.0, abs(float(expected)))
        if math.isnan(float(expected)):
            return math.isnan(float(found))
        return abs(float(expected) - float(found)) <= max(
            _FRACTION_TOLERANCE, _AREA_RELATIVE_TOLERANCE * scale
        )
    if isinstance(expected, Mapping) and isinstance(found, Mapping):
        if "coordinates" in expected or "geometries" in expected:
            return _same_geometry(expected, found)
        return expected.keys() == found.keys() and all(
            _same(expected[k], found[k]) for k in expected
        )
    if isinstance(expected, list | tuple) and isinstance(found, list | tuple):
        return len(expected) == len(found) and all(
            _same(a, b) for a, b in zip(expected, found, strict=True)
        )
    return bool(expected == found)


def _same_geometry(expected: Mapping[str, Any], found: Mapping[str, Any]) -> bool:
    from shapely.geometry import shape

    try:
        a, b = shape(expected), shape(found)
    except Exception:  # a malformed stored geometry is simply not the same geometry
        return False
    if a.is_empty or b.is_empty:
        return bool(a.is_empty and b.is_empty)
    # Compare areas of the symmetric difference in degrees²: only rounding noise may remain.
    rounding = _ROUNDING_STRIP_DEG * max(float(a.length), float(b.length))
    return float(a.symmetric_difference(b).area) <= 1e-9 * max(1.0, float(a.area)) + rounding


def _short(value: Any) -> Any:
    if isinstance(value, Mapping) and ("coordinates" in value or "geometries" in value):
        return f"<{value.get('type')} geometry>"
    return value


def _hashes(value: Any, where: str) -> list[bytes]:
    if not isinstance(value, list):
        raise MerkleProofError(f"{where} must be a list of base64 hashes")
    return [from_b64(h, f"{where}[{i}]", HASH_SIZE) for i, h in enumerate(value)]
