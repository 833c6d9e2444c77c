"""verifier.translog: persistence, proofs against protocol.merkle, signed heads, crash safety."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from protocol.errors import SignatureError
from protocol.keys import SoftwareSigner
from protocol.merkle import MemoryTree, verify_consistency, verify_inclusion
from verifier.errors import InvalidInputError, NotFoundError
from verifier.translog import TransparencyLog

REPO_ROOT = Path(__file__).resolve().parents[2]


def _entries(n: int) -> list[bytes]:
    return [f"entry-{i}".encode() * (i % 3 + 1) for i in range(n)]


def test_log_matches_memory_tree_and_proofs_verify(tmp_path: Path) -> None:
    data = _entries(37)
    reference = MemoryTree()
    with TransparencyLog(tmp_path / "v.db") as log:
        for i, d in enumerate(data):
            assert log.append(d, chip_id="chip-1", time_unix_ns=i) == i
            reference.append(d)
        for size in range(38):
            assert log.root(size) == reference.root(size)
        for size in (1, 5, 16, 37):
            root = log.root(size)
            for index in range(size):
                proof = log.inclusion_proof(index, size)
                assert proof == reference.inclusion_proof(index, size)
                verify_inclusion(index, size, reference.perfect(0, index), proof, root)
            for old in range(size + 1):
                proof = log.consistency_proof(old, size)
                verify_consistency(old, size, log.root(old), root, proof)


def test_entries_persist_across_reopen(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    with TransparencyLog(path) as log:
        for d in _entries(10):
            log.append(d, kind="verdict", chip_id="c", time_unix_ns=5)
        root = log.root()
    with TransparencyLog(path) as log:
        assert log.size == 10
        assert log.root() == root
        assert log.append(b"next") == 10
        assert log.entry(3).entry == _entries(10)[3]
        assert log.entry(3).kind == "verdict"


def test_find_entries_filters_by_chip_time_and_size(tmp_path: Path) -> None:
    with TransparencyLog(tmp_path / "v.db") as log:
        for i in range(10):
            log.append(b"%d" % i, chip_id="a" if i % 2 else "b", time_unix_ns=i * 100)
        found = log.find_entries("a", 200, 700)
        assert [e.index for e in found] == [3, 5, 7]
        assert [e.index for e in log.find_entries("a", 0, 10_000, tree_size=6)] == [1, 3, 5]
        assert log.find_entries("nobody", 0, 10_000) == []


def test_signed_tree_heads_are_stored_and_verify(tmp_path: Path) -> None:
    signer = SoftwareSigner.generate()
    with TransparencyLog(tmp_path / "v.db") as log:
        assert log.latest_tree_head() is None
        empty = log.sign_tree_head(signer, 1_000)
        for d in _entries(5):
            log.append(d)
        head = log.sign_tree_head(signer, 2_000)
        assert head.tree_size == 5 and head.root == log.root(5)
        head.verify(signer.public_key())
        assert log.tree_heads() == [empty, head]
        assert log.latest_tree_head() == head
        with pytest.raises(SignatureError):
            head.verify(SoftwareSigner.generate().public_key())


def test_rejects_bad_requests_without_changing_the_log(tmp_path: Path) -> None:
    with TransparencyLog(tmp_path / "v.db") as log:
        for d in _entries(4):
            log.append(d)
        root = log.root()
        with pytest.raises(InvalidInputError, match="must be bytes"):
            log.append("text")  # type: ignore[arg-type]
        with pytest.raises(NotFoundError, match="beyond the log's 4 entries"):
            log.root(5)
        with pytest.raises(NotFoundError, match="entry 4 is not in a tree of size 4"):
            log.inclusion_proof(4)
        with pytest.raises(NotFoundError, match="from size 3 to 2"):
            log.consistency_proof(3, 2)
        with pytest.raises(NotFoundError, match="no entry 9"):
            log.entry(9)
        assert log.size == 4 and log.root() == root


_WRITER = textwrap.dedent(
    """
    import sys
    from verifier.translog import TransparencyLog

    log = TransparencyLog(sys.argv[1])
    i = 0
    while True:
        index = log.append(b"entry-%d" % i, chip_id="c", time_unix_ns=i)
        # Report only after append returned, i.e. after COMMIT: these must survive the kill.
        sys.stdout.write(f"{index}\\n")
        sys.stdout.flush()
        i += 1
    """
)


def test_committed_entries_survive_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "v.db"
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)], stdout=subprocess.PIPE, env=env, text=True
    )
    assert proc.stdout is not None
    committed: list[int] = []
    deadline = time.monotonic() + 30
    while len(committed) < 40 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        committed.append(int(line))
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert len(committed) >= 40, "writer did not get going"
    with TransparencyLog(path) as log:
        # Everything acknowledged is there, in order, and the tree is whole: the subtree
        # hashes written with each entry agree with a from-scratch recomputation.
        assert log.size >= committed[-1] + 1
        reference = MemoryTree()
        for i in range(log.size):
            entry = log.entry(i)
            assert entry.entry == b"entry-%d" % i
            reference.append(entry.entry)
        assert log.root() == reference.root()
        assert log.append(b"after-crash") == reference.size
