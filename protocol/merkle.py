"""RFC 6962 / RFC 9162 Merkle tree: tree heads, inclusion and consistency proofs.

Pure functions, no I/O. Hashing is SHA-256 with domain separation: a leaf is
``SHA-256(0x00 || data)`` and an interior node ``SHA-256(0x01 || left || right)``, so a leaf can
never be passed off as a node (second-preimage attack on plain Merkle trees).

Proof *generation* follows the recursive definitions of RFC 9162 §2.1 (MTH, PATH, SUBPROOF) over
a ``PerfectHash`` callback that returns the hash of an aligned, complete subtree. Those subtrees
never change once their last leaf is appended, so a store can cache them (the transparency log
keeps them in SQLite) and every proof then costs O(log n) lookups. Proof *verification* follows
the iterative algorithms of RFC 9162 §2.1.3.2 and §2.1.4.2, a second, independent formulation,
so a bug in one is unlikely to be mirrored in the other.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from protocol.codec import from_b64, to_b64
from protocol.errors import ProtocolError, WireError
from protocol.keys import PUBLIC_KEY_BYTES, SIGNATURE_BYTES, Signer, verify_signature

HASH_SIZE = 32
LEAF_PREFIX = b"\x00"
NODE_PREFIX = b"\x01"
EMPTY_ROOT = hashlib.sha256(b"").digest()

# (level, index) -> hash of leaves [index * 2**level, (index + 1) * 2**level)
PerfectHash = Callable[[int, int], bytes]


class MerkleProofError(ProtocolError):
    """A proof or tree head does not verify; the message says which check failed."""


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(LEAF_PREFIX + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(NODE_PREFIX + left + right).digest()


def _split(size: int) -> int:
    """Largest power of two strictly below ``size`` (RFC 9162's k), for size >= 2."""
    return 1 << ((size - 1).bit_length() - 1)


def _is_power_of_two(size: int) -> bool:
    return size > 0 and size & (size - 1) == 0


def range_hash(perfect: PerfectHash, start: int, end: int) -> bytes:
    """MTH(D[start:end]). ``start`` must be aligned as in the RFC recursion (it always is there)."""
    size = end - start
    if size == 0:
        return EMPTY_ROOT
    if _is_power_of_two(size):
        level = size.bit_length() - 1
        return perfect(level, start >> level)
    k = _split(size)
    return node_hash(range_hash(perfect, start, start + k), range_hash(perfect, start + k, end))


def inclusion_path(perfect: PerfectHash, index: int, tree_size: int) -> list[bytes]:
    """PATH(index, D[tree_size]): sibling hashes from the leaf up to the root."""
    if not 0 <= index < tree_size:
        raise MerkleProofError(f"leaf index {index} is outside a tree of size {tree_size}")
    path: list[bytes] = []
    start, end = 0, tree_size
    # Walk down from the root; each step records the sibling subtree. Built top-down, so reverse.
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(range_hash(perfect, start + k, end))
            end = start + k
        else:
            path.append(range_hash(perfect, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_path(perfect: PerfectHash, old_size: int, new_size: int) -> list[bytes]:
    """PROOF(old_size, D[new_size]) of RFC 9162 §2.1.4.1 (empty when old_size is 0 or equal)."""
    if not 0 <= old_size <= new_size:
        raise MerkleProofError(f"no consistency proof from size {old_size} to {new_size}")
    if old_size in (0, new_size):
        return []
    path: list[bytes] = []
    start, end = 0, new_size
    whole_old_tree = True  # SUBPROOF's b: is [start, old_size) the entire old tree?
    while old_size != end:
        k = _split(end - start)
        if old_size - start <= k:
            path.append(range_hash(perfect, start + k, end))
            end = start + k
        else:
            path.append(range_hash(perfect, start, start + k))
            start += k
            whole_old_tree = False
    if not whole_old_tree:
        path.append(range_hash(perfect, start, end))
    path.reverse()
    return path


class MemoryTree:
    """An in-memory Merkle tree over leaf hashes; keeps every complete subtree hash."""

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Sequence[bytes] = ()) -> None:
        self._levels: list[list[bytes]] = [[]]
        for h in leaf_hashes:
            self.append_leaf_hash(h)

    @property
    def size(self) -> int:
        return len(self._levels[0])

    def append(self, data: bytes) -> int:
        return self.append_leaf_hash(leaf_hash(data))

    def append_leaf_hash(self, h: bytes) -> int:
        if len(h) != HASH_SIZE:
            raise MerkleProofError(f"leaf hash must be {HASH_SIZE} bytes, got {len(h)}")
        index = self.size
        self._levels[0].append(h)
        level = 0
        # A node at level+1 completes whenever its right child just completed.
        while len(self._levels[level]) % 2 == 0:
            pair = self._levels[level][-2:]
            if len(self._levels) == level + 1:
                self._levels.append([])
            self._levels[level + 1].append(node_hash(pair[0], pair[1]))
            level += 1
        return index

    def perfect(self, level: int, index: int) -> bytes:
        return self._levels[level][index]

    def root(self, tree_size: int | None = None) -> bytes:
        return range_hash(self.perfect, 0, self._check_size(tree_size))

    def inclusion_proof(self, index: int, tree_size: int | None = None) -> list[bytes]:
        return inclusion_path(self.perfect, index, self._check_size(tree_size))

    def consistency_proof(self, old_size: int, new_size: int | None = None) -> list[bytes]:
        return consistency_path(self.perfect, old_size, self._check_size(new_size))

    def _check_size(self, tree_size: int | None) -> int:
        if tree_size is None:
            return self.size
        if not 0 <= tree_size <= self.size:
            raise MerkleProofError(f"tree size {tree_size} is beyond the {self.size} leaves held")
        return tree_size


def _check_hash(name: str, h: bytes) -> None:
    if len(h) != HASH_SIZE:
        raise MerkleProofError(f"{name} must be {HASH_SIZE} bytes, got {len(h)}")


def root_from_inclusion_proof(
    index: int, tree_size: int, leaf: bytes, proof: Sequence[bytes]
) -> bytes:
    """The root implied by a leaf hash and its audit path (RFC 9162 §2.1.3.2)."""
    if not 0 <= index < tree_size:
        raise MerkleProofError(f"leaf index {index} is outside a tree of size {tree_size}")
    _check_hash("leaf hash", leaf)
    fn, sn = index, tree_size - 1
    r = leaf
    for position, p in enumerate(proof):
        _check_hash(f"inclusion proof[{position}]", p)
        if sn == 0:
            raise MerkleProofError(
                f"inclusion proof has {len(proof)} hashes; a tree of size {tree_size} needs fewer"
            )
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleProofError(
            f"inclusion proof has {len(proof)} hashes; a tree of size {tree_size} needs more"
        )
    return r


def verify_inclusion(
    index: int, tree_size: int, leaf: bytes, proof: Sequence[bytes], root: bytes
) -> None:
    _check_hash("root", root)
    computed = root_from_inclusion_proof(index, tree_size, leaf, proof)
    if computed != root:
        raise MerkleProofError(
            f"inclusion proof for leaf {index} leads to root {computed.hex()}, "
            f"not the tree head's {root.hex()}"
        )


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree of ``new_size`` extends the tree of ``old_size`` (RFC 9162 §2.1.4.2)."""
    if not 0 <= old_size <= new_size:
        raise MerkleProofError(f"tree size went from {old_size} down to {new_size}")
    if old_size == new_size:
        if proof:
            raise MerkleProofError("equal tree sizes need an empty consistency proof")
        if old_root != new_root:
            raise MerkleProofError(
                f"two tree heads of size {old_size} have different roots "
                f"{old_root.hex()} and {new_root.hex()}"
            )
        return
    if old_size == 0:
        # Every tree extends the empty one.
        if proof:
            raise MerkleProofError("a consistency proof from the empty tree must be empty")
        return
    _check_hash("old root", old_root)
    _check_hash("new root", new_root)
    if not proof:
        raise MerkleProofError(f"consistency proof from {old_size} to {new_size} is empty")
    for position, p in enumerate(proof):
        _check_hash(f"consistency proof[{position}]", p)
    path = list(proof)
    if _is_power_of_two(old_size):
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise MerkleProofError(
                f"consistency proof from {old_size} to {new_size} has too many hashes"
            )
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise MerkleProofError(
            f"consistency proof from {old_size} to {new_size} has too few hashes"
        )
    if fr != old_root:
        raise MerkleProofError(
            f"consistency proof does not reproduce the old root at size {old_size}: "
            f"expected {old_root.hex()}, found {fr.hex()}"
        )
    if sr != new_root:
        raise MerkleProofError(
            f"consistency proof does not reproduce the new root at size {new_size}: "
            f"expected {new_root.hex()}, found {sr.hex()}"
        )


# Domain-separated so a tree-head signature can never be replayed as any other signed message.
TREE_HEAD_CONTEXT = b"lightfence-tree-head-v1\x00"


def tree_head_message(tree_size: int, timestamp_unix_s: int, root: bytes) -> bytes:
    """The exact bytes a log signs: context, size (u64), timestamp (u64), root (32 B)."""
    return TREE_HEAD_CONTEXT + struct.pack(">QQ", tree_size, timestamp_unix_s) + root


@dataclass(frozen=True, slots=True)
class SignedTreeHead:
    """A log's signed statement: "my first ``tree_size`` entries hash to ``root``"."""

    tree_size: int
    timestamp_unix_s: int
    root: bytes
    log_public_key: bytes
    signature: bytes

    def __post_init__(self) -> None:
        if self.tree_size < 0 or self.timestamp_unix_s < 0:
            raise WireError("tree head size and timestamp must be non-negative")
        _check_hash("tree head root", self.root)

    @classmethod
    def sign(
        cls, signer: Signer, tree_size: int, timestamp_unix_s: int, root: bytes
    ) -> SignedTreeHead:
        message = tree_head_message(tree_size, timestamp_unix_s, root)
        return cls(tree_size, timestamp_unix_s, root, signer.public_key(), signer.sign(message))

    def verify(self, log_public_key: bytes | None = None) -> None:
        """SignatureError unless signed by ``log_public_key`` (default: the key it names)."""
        key = self.log_public_key if log_public_key is None else log_public_key
        message = tree_head_message(self.tree_size, self.timestamp_unix_s, self.root)
        verify_signature(key, message, self.signature)

    def to_json(self) -> dict[str, Any]:
        return {
            "tree_size": self.tree_size,
            "timestamp_unix_s": self.timestamp_unix_s,
            "root_b64": to_b64(self.root),
            "log_public_key_b64": to_b64(self.log_public_key),
            "signature_b64": to_b64(self.signature),
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> SignedTreeHead:
        if not isinstance(obj, Mapping):
            raise WireError("a signed tree head must be a JSON object")
        size, timestamp = obj.get("tree_size"), obj.get("timestamp_unix_s")
        if type(size) is not int or type(timestamp) is not int:
            raise WireError("tree_size and timestamp_unix_s must be integers")
        return cls(
            tree_size=size,
            timestamp_unix_s=timestamp,
            root=from_b64(obj.get("root_b64"), "root_b64", HASH_SIZE),
            log_public_key=from_b64(
                obj.get("log_public_key_b64"), "log_public_key_b64", PUBLIC_KEY_BYTES
            ),
            signature=from_b64(obj.get("signature_b64"), "signature_b64", SIGNATURE_BYTES),
        )
