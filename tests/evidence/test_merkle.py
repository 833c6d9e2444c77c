"""protocol.merkle against the RFC 6962 reference tree and an independent naive recursion."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.merkle import (
    EMPTY_ROOT,
    MemoryTree,
    MerkleProofError,
    leaf_hash,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)

# The 8-leaf reference tree used by the certificate-transparency and transparency-dev/merkle
# test suites (proof/verify_test.go): leaves, roots for sizes 1..8, and known proofs.
LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    bytes.fromhex(h)
    for h in (
        "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
        "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
        "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
        "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
        "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
        "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
        "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
    )
]
# (leaf index, tree size, proof)
INCLUSION_VECTORS = [
    (0, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (5, 8, ["bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]),
    (1, 5, ["6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
]  # fmt: skip
# (old size, new size, proof)
CONSISTENCY_VECTORS = [
    (1, 8, ["96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"]),
    (6, 8, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
    (2, 5, ["5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
            "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"]),
    (6, 7, ["0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
            "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
            "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"]),
]  # fmt: skip

SOME_HASH = bytes.fromhex("abacaba000000000000000000000000000000000000000000060061e00123456")


@pytest.fixture(scope="module")
def reference_tree() -> MemoryTree:
    return MemoryTree([leaf_hash(d) for d in LEAVES])


def test_empty_root_is_sha256_of_nothing(reference_tree: MemoryTree) -> None:
    assert hashlib.sha256(b"").digest() == EMPTY_ROOT
    assert reference_tree.root(0) == EMPTY_ROOT


@pytest.mark.parametrize("size", range(1, 9))
def test_reference_roots(reference_tree: MemoryTree, size: int) -> None:
    assert reference_tree.root(size) == ROOTS[size - 1]


@pytest.mark.parametrize(("index", "size", "proof_hex"), INCLUSION_VECTORS)
def test_reference_inclusion_proofs(
    reference_tree: MemoryTree, index: int, size: int, proof_hex: list[str]
) -> None:
    proof = [bytes.fromhex(h) for h in proof_hex]
    assert reference_tree.inclusion_proof(index, size) == proof
    verify_inclusion(index, size, leaf_hash(LEAVES[index]), proof, ROOTS[size - 1])


@pytest.mark.parametrize(("old", "new", "proof_hex"), CONSISTENCY_VECTORS)
def test_reference_consistency_proofs(
    reference_tree: MemoryTree, old: int, new: int, proof_hex: list[str]
) -> None:
    proof = [bytes.fromhex(h) for h in proof_hex]
    assert reference_tree.consistency_proof(old, new) == proof
    verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)


def _inclusion_probes(
    index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes
) -> dict[str, tuple[int, int, bytes, list[bytes], bytes]]:
    probes = {
        "index - 1": (index - 1, size, leaf, proof, root),
        "index + 1": (index + 1, size, leaf, proof, root),
        "index ^ 2": (index ^ 2, size, leaf, proof, root),
        "size * 2": (index, size * 2, leaf, proof, root),
        "size // 2": (index, size // 2, leaf, proof, root),
        "wrong leaf": (index, size, SOME_HASH, proof, root),
        "empty root": (index, size, leaf, proof, EMPTY_ROOT),
        "random root": (index, size, leaf, proof, SOME_HASH),
        "trailing root": (index, size, leaf, [*proof, root], root),
        "preceding root": (index, size, leaf, [root, *proof], root),
        "trailing garbage": (index, size, leaf, [*proof, b""], root),
    }
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 8]) + flipped[i][1:]
        probes[f"proof[{i}] bit 3"] = (index, size, leaf, flipped, root)
    if proof:
        probes["removed component"] = (index, size, leaf, proof[:-1], root)
    if len(proof) > 1:
        probes["inserted component"] = (index, size, leaf, [proof[0], SOME_HASH, *proof[1:]], root)
    return probes


@pytest.mark.parametrize(("index", "size", "proof_hex"), INCLUSION_VECTORS)
def test_corrupted_inclusion_proofs_fail(index: int, size: int, proof_hex: list[str]) -> None:
    proof = [bytes.fromhex(h) for h in proof_hex]
    probes = _inclusion_probes(index, size, leaf_hash(LEAVES[index]), proof, ROOTS[size - 1])
    for name, (i, n, leaf, p, root) in probes.items():
        with pytest.raises(MerkleProofError):
            verify_inclusion(i, n, leaf, p, root)
            pytest.fail(f"corrupted inclusion proof verified: {name}")


@pytest.mark.parametrize(("old", "new", "proof_hex"), CONSISTENCY_VECTORS)
def test_corrupted_consistency_proofs_fail(old: int, new: int, proof_hex: list[str]) -> None:
    proof = [bytes.fromhex(h) for h in proof_hex]
    r1, r2 = ROOTS[old - 1], ROOTS[new - 1]
    probes: dict[str, tuple[int, int, bytes, bytes, list[bytes]]] = {
        "old - 1": (old - 1, new, r1, r2, proof),
        "old + 1": (old + 1, new, r1, r2, proof),
        "old ^ 2": (old ^ 2, new, r1, r2, proof),
        "new * 2": (old, new * 2, r1, r2, proof),
        "new // 2": (old, new // 2, r1, r2, proof),
        "wrong old root": (old, new, SOME_HASH, r2, proof),
        "wrong new root": (old, new, r1, SOME_HASH, proof),
        "swapped roots": (old, new, r2, r1, proof),
        "empty proof": (old, new, r1, r2, []),
        "trailing garbage": (old, new, r1, r2, [*proof, b""]),
        "trailing old root": (old, new, r1, r2, [*proof, r1]),
        "trailing new root": (old, new, r1, r2, [*proof, r2]),
        "preceding old root": (old, new, r1, r2, [r1, *proof]),
        "preceding new root": (old, new, r1, r2, [r2, *proof]),
        "preceding proof[0]": (old, new, r1, r2, [proof[0], *proof]),
        "truncated": (old, new, r1, r2, proof[:-1]),
    }
    for i in range(len(proof)):
        flipped = list(proof)
        flipped[i] = bytes([flipped[i][0] ^ 16]) + flipped[i][1:]
        probes[f"proof[{i}] bit 4"] = (old, new, r1, r2, flipped)
    for name, (m, n, a, b, p) in probes.items():
        with pytest.raises(MerkleProofError):
            verify_consistency(m, n, a, b, p)
            pytest.fail(f"corrupted consistency proof verified: {name}")


def test_trivial_consistency_cases() -> None:
    verify_consistency(0, 0, SOME_HASH, SOME_HASH, [])
    verify_consistency(0, 5, EMPTY_ROOT, SOME_HASH, [])
    verify_consistency(3, 3, SOME_HASH, SOME_HASH, [])
    with pytest.raises(MerkleProofError, match="different roots"):
        verify_consistency(3, 3, SOME_HASH, EMPTY_ROOT, [])
    with pytest.raises(MerkleProofError, match="empty consistency proof"):
        verify_consistency(3, 3, SOME_HASH, SOME_HASH, [EMPTY_ROOT])
    with pytest.raises(MerkleProofError, match="down to"):
        verify_consistency(2, 1, SOME_HASH, SOME_HASH, [])


def test_inclusion_rejects_out_of_range_index(reference_tree: MemoryTree) -> None:
    with pytest.raises(MerkleProofError, match="outside a tree of size 8"):
        reference_tree.inclusion_proof(8, 8)
    with pytest.raises(MerkleProofError, match="outside"):
        root_from_inclusion_proof(0, 0, SOME_HASH, [])
    with pytest.raises(MerkleProofError, match="beyond the 8 leaves"):
        reference_tree.root(9)


# --- independent naive recursion, straight from RFC 9162 §2.1 over data lists ---------------


def _naive_mth(data: list[bytes]) -> bytes:
    if not data:
        return hashlib.sha256(b"").digest()
    if len(data) == 1:
        return hashlib.sha256(b"\x00" + data[0]).digest()
    k = 1
    while k * 2 < len(data):
        k *= 2
    return hashlib.sha256(b"\x01" + _naive_mth(data[:k]) + _naive_mth(data[k:])).digest()


def _naive_path(m: int, data: list[bytes]) -> list[bytes]:
    if len(data) == 1:
        return []
    k = 1
    while k * 2 < len(data):
        k *= 2
    if m < k:
        return [*_naive_path(m, data[:k]), _naive_mth(data[k:])]
    return [*_naive_path(m - k, data[k:]), _naive_mth(data[:k])]


def _naive_subproof(m: int, data: list[bytes], b: bool) -> list[bytes]:
    if m == len(data):
        return [] if b else [_naive_mth(data)]
    k = 1
    while k * 2 < len(data):
        k *= 2
    if m <= k:
        return [*_naive_subproof(m, data[:k], b), _naive_mth(data[k:])]
    return [*_naive_subproof(m - k, data[k:], False), _naive_mth(data[:k])]


@settings(max_examples=60, deadline=None)
@given(data=st.lists(st.binary(max_size=8), min_size=1, max_size=70), seed=st.integers(0, 10**6))
def test_tree_matches_naive_recursion(data: list[bytes], seed: int) -> None:
    tree = MemoryTree()
    for d in data:
        tree.append(d)
    n = len(data)
    size = seed % n + 1
    index = seed % size
    old = (seed // 7) % (size + 1)
    assert tree.root(size) == _naive_mth(data[:size])
    proof = tree.inclusion_proof(index, size)
    assert proof == _naive_path(index, data[:size])
    verify_inclusion(index, size, leaf_hash(data[index]), proof, _naive_mth(data[:size]))
    consistency = tree.consistency_proof(old, size)
    expected = [] if old in (0, size) else _naive_subproof(old, data[:size], True)
    assert consistency == expected
    verify_consistency(old, size, _naive_mth(data[:old]), _naive_mth(data[:size]), consistency)


@settings(max_examples=40, deadline=None)
@given(
    data=st.lists(st.binary(max_size=4), min_size=3, max_size=40, unique=True),
    seed=st.integers(0, 10**6),
)
def test_rewritten_history_breaks_consistency(data: list[bytes], seed: int) -> None:
    """Removing, changing or reordering any earlier entry makes the old head unprovable."""
    n = len(data)
    old = seed % (n - 1) + 1
    old_root = _naive_mth(data[:old])
    victim = seed % old
    removed = data[:victim] + data[victim + 1 :]
    swapped = list(data)
    other = (victim + 1) % n
    swapped[victim], swapped[other] = swapped[other], swapped[victim]
    changed = list(data)
    changed[victim] = changed[victim] + b"!"
    for forged in (removed, swapped, changed):
        forged_tree = MemoryTree([leaf_hash(d) for d in forged])
        new_size = forged_tree.size
        if old > new_size:
            continue
        proof = forged_tree.consistency_proof(old, new_size)
        with pytest.raises(MerkleProofError):
            verify_consistency(old, new_size, old_root, forged_tree.root(), proof)
