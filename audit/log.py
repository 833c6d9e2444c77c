"""The log side of a bundle: the log key, signed tree heads, consistency and inclusion proofs.

Tree heads must be signed by the log key (pinned, else taken from the bundle: a finding unless
asked for), oldest first and growing, each consecutive pair joined by a consistency proof; each
entry's canonical bytes must hash into the latest head through its inclusion proof.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from audit.report import AuditState
from protocol.codec import from_b64, to_b64
from protocol.errors import ProtocolError, SignatureError
from protocol.evidence_format import entry_leaf_hash
from protocol.keys import PUBLIC_KEY_BYTES
from protocol.merkle import (
    HASH_SIZE,
    MerkleProofError,
    SignedTreeHead,
    verify_consistency,
    verify_inclusion,
)


def log_key(bundle: Mapping[str, Any], pinned: bytes | None) -> bytes | None:
    """The key that must have signed the manifest (as for the tree heads: pinned, else named)."""
    if pinned is not None:
        return pinned
    try:
        return _named_key(bundle)
    except ProtocolError:
        return None  # already a `log.key` finding


def _named_key(bundle: Mapping[str, Any]) -> bytes:
    """The log key the bundle names (ProtocolError when it names none that is well formed)."""
    return from_b64(bundle.get("log_public_key_b64"), "log_public_key_b64", PUBLIC_KEY_BYTES)


def check_log(
    audit: AuditState, bundle: Mapping[str, Any], pinned_key: bytes | None
) -> SignedTreeHead | None:
    """Check the log key and every tree head; the latest head, or None when none is usable."""
    try:
        bundle_key = _named_key(bundle)
    except ProtocolError as exc:
        audit.fail("log.key", "log_public_key_b64", str(exc))
        return None
    if pinned_key is not None and pinned_key != bundle_key:
        audit.fail(
            "log.key",
            "log_public_key_b64",
            "the bundle names a different log key than pinned",
            expected=to_b64(pinned_key),
            found=to_b64(bundle_key),
        )
    key = bundle_key if pinned_key is None else pinned_key
    if pinned_key is None:
        audit.unpinned("log", "log_public_key_b64", "--log-key")
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
                expected=to_b64(key),
                found=to_b64(head.log_public_key),
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


def check_inclusion(
    audit: AuditState, where: str, index: int, item: Mapping[str, Any], head: SignedTreeHead
) -> None:
    try:
        leaf = entry_leaf_hash(item.get("entry"))
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


def _hashes(value: Any, where: str) -> list[bytes]:
    if not isinstance(value, list):
        raise MerkleProofError(f"{where} must be a list of base64 hashes")
    return [from_b64(h, f"{where}[{i}]", HASH_SIZE) for i, h in enumerate(value)]
