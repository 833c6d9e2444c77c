"""A throw-away PostgreSQL server for a benchmark run (`--postgres`): the test suite's cluster
helper, but with fsync on, so PostgreSQL's figures include its real commit cost."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from tests.verifier.pg_cluster import Cluster, find_binaries


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    binaries, missing = find_binaries()
    if binaries is None:
        raise SystemExit(missing)
    cluster = Cluster.start(binaries, durable=True)
    try:
        yield cluster
    finally:
        cluster.stop()
