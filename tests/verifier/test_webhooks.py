"""Webhook signing and the persisted outbox."""

from __future__ import annotations

import hashlib
import hmac
import time
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from verifier.store import SqliteStore
from verifier.webhooks import backoff_s, signature_header


@given(secret=st.text(min_size=1), timestamp_s=st.integers(0, 2**40), body=st.binary())
def test_signature_is_hmac_sha256_over_timestamp_and_body(secret: str, timestamp_s: int,
                                                           body: bytes) -> None:
    expected = hmac.new(secret.encode(), f"{timestamp_s}.".encode() + body,
                        hashlib.sha256).hexdigest()
    assert signature_header(secret, timestamp_s, body) == f"sha256={expected}"
    assert signature_header(secret + "x", timestamp_s, body) != f"sha256={expected}"


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_s(n, 1.0) for n in range(4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_s(40, 1.0) == 3600.0


def test_alert_and_its_outbox_rows_survive_reopen(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "v.sqlite3")
    now = time.time_ns()
    alert = store.open_alert("went_dark", severity="high", subject_kind="chip", subject_id="c1",
                             message="m", details={}, now_unix_ns=now,
                             outbox=["http://a", "http://b"])
    assert alert is not None
    assert store.open_alert("went_dark", severity="high", subject_kind="chip", subject_id="c1",
                            message="again", details={}, now_unix_ns=now,
                            outbox=["http://a"]) is None
    store.close()
    store = SqliteStore(tmp_path / "v.sqlite3")
    due = store.due_outbox(now, 10)
    assert sorted(item.url for item in due) == ["http://a", "http://b"]
    store.outbox_retry(due[0].outbox_id, now + 10**9, "HTTP 500", give_up=False)
    assert [i.url for i in store.due_outbox(now, 10)] == [due[1].url]
    store.close()
