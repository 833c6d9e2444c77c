"""Offline audit of an evidence bundle: trusts the bundle for nothing it can check.

Needs no network and no verifier database, and no verifier code: the format comes from
`protocol.evidence_format`, the decision rule from geo. Every check that fails becomes a
`Finding` naming the log entry, the JSON path of the field, what was expected and what was
found; the audit carries on so one report lists every problem. Checks, per bundle:

- keys: the CA and log keys must be pinned (``ca_public_key``, ``log_public_key``); one taken
  from the bundle is a finding unless ``allow_unpinned``;
- tree heads (`audit.log`): Ed25519 signature by the log key, sizes and times in order,
  consistency proof between consecutive heads;
- entries: canonical bytes hash into the latest head via the inclusion proof (`audit.log`);
  indices strictly increasing; chip and time inside the exported range; not decided after the
  head that logs it (here);
- completeness (`audit.completeness`): the chip's hash chain runs without gap, repeat or
  reordering, and the manifest signed with the log key vouches for both ends;
- per verdict (`audit.verdict`): CA signature of the chip and landmark certificates
  (`audit.certificates`); for each measurement record (`audit.records`) the landmark signature
  over the record, the landmark signature over the challenge datagram, the chip signature over
  that exact challenge, the nonce/landmark/chip bindings between record, challenge and
  response, freshness (issued <= sent < expiry, answer before expiry, before the verdict, at
  most `audit.parameters.MAX_RECORD_AGE_S` old), certificate validity at the send time,
  revocation and nonce uniqueness; each solver input backed by a valid record (same landmark,
  same RTT) at the certified position; finally (`audit.recompute`) the sound region and verdict
  recomputed with ``geo.robust.assess_tolerating`` (the policy's ``tolerate_faulty_landmarks``;
  absent means 0, i.e. ``geo.assess.assess``) with the parameters the audit owns
  (`audit.parameters`: any other value in the entry is a finding) and compared with what was
  stored;
- the key rule (part of ``geo.decision.decide``, in `audit.recompute`): the key protection
  the CA signed into the chip certificate against the policy's ``min_key_protection`` (absent:
  software, the rule before it existed; raised to ``min_key_protection`` when the auditor pins
  one): a `verified` earned by a key below the minimum is a finding, and so is an
  ``untrusted_key`` the rule does not back.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from audit.completeness import check_completeness
from audit.log import check_inclusion, check_log, log_key
from audit.report import NS_PER_S, AuditError, AuditReport, AuditState, Finding
from audit.verdict import check_verdict
from protocol.errors import CertificateError
from protocol.evidence_format import (
    ALERT_EVIDENCE_TYPE,
    BUNDLE_FORMAT,
    READABLE_BUNDLE_FORMATS,
    VERDICT_EVIDENCE_TYPE,
)
from protocol.key_protection import check_level
from protocol.merkle import SignedTreeHead
from protocol.revocation import Revocation

__all__ = ["AuditError", "AuditReport", "Finding", "verify_bundle"]


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
    audit = AuditState(allow_unpinned=allow_unpinned)
    if not isinstance(bundle, Mapping) or bundle.get("format") not in READABLE_BUNDLE_FORMATS:
        raise AuditError(f"not an evidence bundle (format must be {BUNDLE_FORMAT!r})")
    latest = check_log(audit, bundle, log_public_key)
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
            check_inclusion(audit, where, index, item, latest)
        if not isinstance(entry, Mapping):
            audit.fail("entry.format", f"{where}.entry", "entry must be a JSON object", entry=index)
            continue
        _check_entry_scope(audit, where, index, entry, bundle=bundle, head=latest)
        if entry.get("type") == VERDICT_EVIDENCE_TYPE:
            audit.counts["verdicts"] += 1
            check_verdict(
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
        log_key(bundle, log_public_key),
        fail=audit.fail,
        note=audit.notes.append,
    )
    return audit.report()


def _check_entry_scope(
    audit: AuditState,
    where: str,
    index: int,
    entry: Mapping[str, Any],
    *,
    bundle: Mapping[str, Any],
    head: SignedTreeHead | None,
) -> None:
    """The entry is about the bundle's chip, inside its range, and not after its tree head."""
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
