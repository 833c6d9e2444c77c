"""Appending to the evidence log in the database (both backends): the one-query read of the
next index, the chip's head and the left subtrees gives the tree an in-memory reference
builds; appenders on two connections take turns (dense indexes, unforked chains); an append
that fails inside the caller's transaction leaves nothing behind."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from protocol.merkle import MemoryTree
from verifier.config import default_config
from verifier.store import Store, open_store
from verifier.translog import TransparencyLog


class BuildFailure(RuntimeError):
    """What the test's entry builder raises."""


def _entry(chip: str, i: int) -> bytes:
    return f"{chip}:{i}".encode()


def _fixed(entry: bytes) -> Callable[[int, bytes | None], bytes]:
    return lambda _seq, _previous: entry


def test_appends_build_the_reference_tree(store: Store) -> None:
    """70 entries, chained and not, alone and three to a caller's transaction: every root
    and every complete subtree equals the reference tree's (subtrees up to level 6)."""
    log = TransparencyLog(store)
    tree = MemoryTree()
    for i in range(70):
        chip = f"chip-{i % 3}"
        if i % 5 == 4:
            entry = _entry("plain", i)
            assert log.append(entry, kind="alert", time_unix_ns=i) == i
        elif i % 2:
            entry = _entry(chip, i)
            with store.transaction():
                assert log.append_chained(_fixed(entry), kind="verdict", chip_id=chip,
                                          time_unix_ns=i)[0] == i
        else:
            entry = _entry(chip, i)
            assert log.append_chained(_fixed(entry), kind="verdict", chip_id=chip,
                                      time_unix_ns=i)[0] == i
        tree.append(entry)
    assert [log.root(n) for n in range(1, 71)] == [tree.root(n) for n in range(1, 71)]
    complete = [(level, index) for level in range(7) for index in range(70 >> level)]
    assert store.log_nodes(complete) == {key: tree.perfect(*key) for key in complete}


def test_two_appenders_take_turns(tmp_path: Path, database_url: str) -> None:
    """Two connections append chained entries for the same chips at once: indexes 0..n-1
    with no gap, each chip's sequence numbers 0..k-1, each entry linked to its predecessor."""
    config = default_config(data_dir=tmp_path, database_url=database_url)
    stores = [open_store(config), open_store(config)]
    per_thread = 20
    failures: list[BaseException] = []

    def append(store: Store) -> None:
        log = TransparencyLog(store)
        try:
            for i in range(per_thread):
                chip = f"chip-{i % 2}"
                log.append_chained(lambda seq, prev: f"{seq}:{prev!r}".encode(),
                                   kind="verdict", chip_id=chip, time_unix_ns=i)
        except BaseException as exc:  # reported below, in the test's thread
            failures.append(exc)

    threads = [threading.Thread(target=append, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not failures
    store = stores[0]
    assert store.log_size() == 2 * per_thread
    for chip in ("chip-0", "chip-1"):
        chain = store.log_chip_entries(chip, "seq", 0, 2**62, None)
        assert [e.chip_seq for e in chain] == list(range(per_thread))
        previous: bytes | None = None
        for entry in chain:
            assert entry.entry == f"{entry.chip_seq}:{previous!r}".encode()
            head = TransparencyLog(store).chip_head(chip, entry.index + 1)
            assert head is not None and head.seq == entry.chip_seq
            previous = head.leaf_hash
    for opened in stores:
        opened.close()


def test_a_failed_append_in_a_transaction_leaves_nothing(store: Store) -> None:
    """The builder fails after the log's lock and reads: the caller's transaction rolls back,
    and the next append takes the same index and sequence number."""
    log = TransparencyLog(store)
    log.append_chained(lambda seq, prev: b"first", kind="verdict", chip_id="chip-1",
                       time_unix_ns=1)

    def failing(seq: int, prev: bytes | None) -> bytes:
        raise BuildFailure("the entry cannot be built")

    with pytest.raises(BuildFailure), store.transaction():
        store.put_kv("written-before", "1")
        log.append_chained(failing, kind="verdict", chip_id="chip-1", time_unix_ns=2)
    assert store.get_kv("written-before") is None
    assert store.log_size() == 1
    assert log.append_chained(lambda seq, prev: b"second", kind="verdict", chip_id="chip-1",
                              time_unix_ns=3) == (1, 1)
