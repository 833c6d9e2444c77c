"""What only the PostgreSQL store has: transactions that belong to the calling thread, so
several threads (or processes) share one store; and a skip with the reason when the server
binaries are missing."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.verifier.pg_cluster import Cluster, find_binaries
from verifier.store.postgres import PostgresStore


@pytest.fixture
def pg_store(pg_cluster: Cluster) -> Iterator[PostgresStore]:
    url = pg_cluster.fresh_url()
    store = PostgresStore(url)
    yield store
    store.close()
    pg_cluster.drop(url)


def test_a_transaction_belongs_to_its_thread(pg_store: PostgresStore) -> None:
    inside = threading.Barrier(2)
    release = threading.Event()
    failures: list[BaseException] = []

    def writer() -> None:
        try:
            with pg_store.transaction():
                pg_store.put_kv("a", "1")
                inside.wait(10)
                release.wait(10)
        except BaseException as exc:  # reported below
            failures.append(exc)

    thread = threading.Thread(target=writer)
    thread.start()
    inside.wait(10)
    # The other thread's write is not committed yet, and this thread's calls run outside its
    # transaction: neither sees it nor joins it.
    assert pg_store.get_kv("a") is None
    pg_store.put_kv("b", "2")
    release.set()
    thread.join(10)
    assert failures == []
    assert (pg_store.get_kv("a"), pg_store.get_kv("b")) == ("1", "2")


def test_one_threads_rollback_leaves_the_others_work(pg_store: PostgresStore) -> None:
    def work(i: int) -> None:
        for j in range(20):
            try:
                with pg_store.transaction():
                    pg_store.put_kv(f"k{i}-{j}", "v")
                    with pg_store.transaction():  # a savepoint on this thread's connection
                        pg_store.put_kv(f"inner{i}-{j}", "v")
                    if i % 2:
                        raise RuntimeError("odd threads give up")
            except RuntimeError:
                pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    kept = {i for i in range(4) if pg_store.get_kv(f"k{i}-19") == "v"}
    assert kept == {0, 2}
    assert pg_store.get_kv("inner1-0") is None and pg_store.get_kv("inner2-5") == "v"


def test_without_server_binaries_the_reason_is_given(tmp_path: Path) -> None:
    found, reason = find_binaries(search=(str(tmp_path / "no-postgres-here"),))
    assert found is None
    assert "initdb" in reason and "apt-get install postgresql" in reason
