"""Completeness of a bundle: the chip's hash chain and the bundle's signed manifest.

Every log entry about a chip carries ``chip_seq`` (0, 1, 2… per chip) and
``chip_prev_leaf_hash_b64`` (the leaf hash of the chip's previous entry). Inclusion proofs show
each entry is in the log; they cannot show that none was left out. These checks can:

- inside the bundle, the sequence numbers must run without gap, repeat or reordering, and each
  entry must link to the leaf hash of the one before it;
- at the ends, the manifest (signed with the log key, bound to the latest tree head) names the
  first and last sequence numbers exported and the chip's latest entry at that head, so cutting
  entries from the start or the end changes a signed number; when the bundle reaches the chip's
  latest entry, that entry's leaf hash must be the one the manifest names;
- entries logged before chaining existed (no ``chip_seq``) are counted by the manifest, so
  dropping one of those changes a signed number too.
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from audit.report import Fail
from protocol.codec import from_b64
from protocol.codec import to_b64 as _b64
from protocol.errors import ProtocolError, SignatureError
from protocol.evidence_format import (
    CHIP_PREV_FIELD,
    CHIP_SEQ_FIELD,
    MANIFEST_SIGNATURE_FIELD,
    entry_leaf_hash,
    manifest_message,
)
from protocol.keys import SIGNATURE_BYTES, verify_signature
from protocol.merkle import SignedTreeHead


def check_completeness(
    bundle: Mapping[str, Any],
    entries: Sequence[Any],
    head: SignedTreeHead | None,
    log_key: bytes | None,
    *,
    fail: Fail,
    note: Any,
) -> None:
    """Record a finding for every gap, repeat, reordering, broken link or cut end."""
    manifest = _check_manifest(bundle, entries, head, log_key, fail=fail)
    chained: list[tuple[int, int, int, Mapping[str, Any]]] = []  # (position, index, seq, entry)
    unchained = 0
    for k, item in enumerate(entries):
        if not isinstance(item, Mapping) or not isinstance(item.get("entry"), Mapping):
            continue  # named by the entry format checks
        entry, index = item["entry"], item.get("index")
        index = index if type(index) is int else None
        if CHIP_SEQ_FIELD not in entry:
            unchained += 1
            if chained:
                fail(
                    "chain.unchained",
                    f"entries[{k}].entry",
                    "an entry without a sequence number after chained ones (the verifier "
                    "chains every entry about a chip since it began to)",
                    entry=index,
                )
            continue
        seq = entry.get(CHIP_SEQ_FIELD)
        if type(seq) is not int or seq < 0:
            fail(
                "chain.format",
                f"entries[{k}].entry.{CHIP_SEQ_FIELD}",
                "the sequence number must be an integer >= 0",
                entry=index,
                found=seq,
            )
            continue
        chained.append((k, -1 if index is None else index, seq, entry))
    if unchained:
        note(
            f"{unchained} entries predate per-chip sequence numbers; only the signed manifest's "
            "count vouches that none of them is missing"
        )
    _check_chain(chained, fail=fail)
    if manifest is not None:
        _check_ends(manifest, chained, unchained, fail=fail)


def _check_manifest(
    bundle: Mapping[str, Any],
    entries: Sequence[Any],
    head: SignedTreeHead | None,
    log_key: bytes | None,
    *,
    fail: Fail,
) -> Mapping[str, Any] | None:
    manifest = bundle.get("manifest")
    if not isinstance(manifest, Mapping):
        fail(
            "manifest.missing",
            "manifest",
            "the bundle has no signed manifest, so nothing shows it is complete (bundles of "
            "format /1 carry none: export again)",
        )
        return None
    if log_key is not None:
        try:
            signature = from_b64(
                manifest.get(MANIFEST_SIGNATURE_FIELD), MANIFEST_SIGNATURE_FIELD, SIGNATURE_BYTES
            )
            verify_signature(log_key, manifest_message(manifest), signature)
        except (SignatureError, ProtocolError) as exc:
            fail(
                "manifest.signature",
                "manifest.signature_b64",
                f"the manifest is not signed by the log key: {exc}",
                expected=_b64(log_key),
            )
            return None
    bound = {
        "chip_id": bundle.get("chip_id"),
        "from_unix_ns": bundle.get("from_unix_ns"),
        "to_unix_ns": bundle.get("to_unix_ns"),
        "entry_count": len(entries),
    }
    if head is not None:
        bound["tree_size"] = head.tree_size
        bound["root_b64"] = _b64(head.root)
    for key, value in bound.items():
        if manifest.get(key) != value:
            fail(
                "manifest.binding",
                f"manifest.{key}",
                f"the signed manifest and the bundle disagree on {key}",
                expected=manifest.get(key),
                found=value,
            )
    return manifest


def _check_chain(chained: Sequence[tuple[int, int, int, Mapping[str, Any]]], *, fail: Fail) -> None:
    counts = Counter(seq for _, _, seq, _ in chained)
    for k, index, seq, _ in chained:
        if counts[seq] > 1:
            fail(
                "chain.duplicate",
                f"entries[{k}].entry.{CHIP_SEQ_FIELD}",
                f"sequence number {seq} appears {counts[seq]} times",
                entry=index,
                found=seq,
            )
    for (_, _, before, previous), (k, index, seq, entry) in itertools.pairwise(chained):
        where = f"entries[{k}].entry"
        if seq < before:
            fail(
                "chain.order",
                f"{where}.{CHIP_SEQ_FIELD}",
                "sequence numbers must increase through the bundle",
                entry=index,
                expected=f"> {before}",
                found=seq,
            )
        elif seq == before + 1:
            link = entry.get(CHIP_PREV_FIELD)
            expected = _b64(entry_leaf_hash(previous))
            if link != expected:
                fail(
                    "chain.link",
                    f"{where}.{CHIP_PREV_FIELD}",
                    f"entry {seq} does not link to the leaf hash of entry {before}",
                    entry=index,
                    expected=expected,
                    found=link,
                )
    if chained:
        seqs = set(counts)
        missing = sorted(set(range(min(seqs), max(seqs) + 1)) - seqs)
        if missing:
            fail(
                "chain.gap",
                "entries",
                f"{len(missing)} of the chip's entries are missing from the bundle",
                expected=f"sequence numbers {min(seqs)}..{max(seqs)} without gaps",
                found=f"missing {_ranges(missing)}",
            )


def _check_ends(
    manifest: Mapping[str, Any],
    chained: Sequence[tuple[int, int, int, Mapping[str, Any]]],
    unchained: int,
    *,
    fail: Fail,
) -> None:
    if manifest.get("unchained_entries") != unchained:
        fail(
            "chain.truncated",
            "entries",
            "the number of entries without a sequence number differs from the signed manifest",
            expected=manifest.get("unchained_entries"),
            found=unchained,
        )
    seqs = [seq for _, _, seq, _ in chained]
    for key, found in (
        ("first_seq", min(seqs) if seqs else None),
        ("last_seq", max(seqs) if seqs else None),
    ):
        if manifest.get(key) != found:
            fail(
                "chain.truncated",
                f"manifest.{key}",
                "entries were cut from the "
                f"{'start' if key == 'first_seq' else 'end'} of the exported run",
                expected=manifest.get(key),
                found=found,
            )
    head_seq, last_seq = manifest.get("head_seq"), manifest.get("last_seq")
    if last_seq is None:
        return
    if not isinstance(head_seq, int) or not isinstance(last_seq, int) or head_seq < last_seq:
        fail(
            "chain.head",
            "manifest.head_seq",
            "the chip's latest entry cannot come before the last exported one",
            expected=f">= {last_seq}",
            found=head_seq,
        )
        return
    if head_seq == last_seq and seqs and max(seqs) == last_seq:
        k, index, _, entry = max(chained, key=lambda c: c[2])
        last_leaf = _b64(entry_leaf_hash(entry))
        if manifest.get("head_leaf_hash_b64") != last_leaf:
            fail(
                "chain.head",
                f"entries[{k}].entry",
                "the bundle's last entry is not the chip's latest entry the manifest names",
                entry=index,
                expected=manifest.get("head_leaf_hash_b64"),
                found=last_leaf,
            )


def _ranges(values: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` → ``"1..3, 7"``."""
    parts: list[str] = []
    start = previous = values[0]
    for value in [*values[1:], None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        parts.append(str(start) if start == previous else f"{start}..{previous}")
        if value is not None:
            start = previous = value
    return ", ".join(parts)
