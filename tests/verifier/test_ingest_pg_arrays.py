"""The array literals PostgreSQL ingestion sends instead of Python lists
(`verifier.store.ingest_pg`): whatever the values, the server reads back exactly the list, so
a batch id, a result text or a nonce can never be cut, merged or read as NULL."""

from __future__ import annotations

from collections.abc import Iterator

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.verifier.pg_cluster import Cluster
from verifier.store.ingest_pg import bytea_array, int_array, text_array

# PostgreSQL text cannot hold NUL, and a lone surrogate is no UTF-8 at all: neither can reach
# the server as a list element either.
_TEXT = st.text(st.characters(exclude_characters="\x00", exclude_categories=["Cs"]),
                max_size=20)


@pytest.fixture(scope="module")
def conn(pg_cluster: Cluster) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as connection:
        yield connection


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(_TEXT | st.sampled_from(["NULL", "null", "", " ", '"', "\\", "{a,b}"]),
                      max_size=8),
       blobs=st.lists(st.binary(max_size=40), max_size=8),
       ints=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=8))
def test_an_array_literal_reads_back_as_the_list(
        conn: psycopg.Connection[tuple[object, ...]], texts: list[str], blobs: list[bytes],
        ints: list[int]) -> None:
    row = conn.execute("SELECT %s::text[], %s::bytea[], %s::bigint[]",
                       (text_array(texts), bytea_array(blobs), int_array(ints))).fetchone()
    assert row == (texts, blobs, ints)


def _escaped_one_by_one(values: list[str]) -> str:
    return "{" + ",".join('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
                          for v in values) + "}"


@given(st.lists(st.text(max_size=6) | st.sampled_from(["\x00", "a\x00", '"', "\\", ""]),
                max_size=6))
def test_the_one_join_quoting_is_the_element_by_element_one(values: list[str]) -> None:
    """`text_array` quotes a list without `"` or `\\` in one join: the same literal, NULs
    included (the server refuses them; they must not split an element)."""
    assert text_array(values) == _escaped_one_by_one(values)
