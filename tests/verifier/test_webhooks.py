"""Webhook signing, the persisted outbox, and delivery over HTTP to a real receiver."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.verifier.conftest import open_harness
from verifier.config import WebhookConfig, default_config
from verifier.store import Store, open_store
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


def test_alert_and_its_outbox_rows_survive_reopen(tmp_path: Path, database_url: str) -> None:
    config = default_config(data_dir=tmp_path, database_url=database_url)
    store = open_store(config)
    now = time.time_ns()
    alert = store.open_alert("went_dark", severity="high", subject_kind="chip", subject_id="c1",
                             message="m", details={}, now_unix_ns=now,
                             outbox=["http://a", "http://b"])
    assert alert is not None
    assert store.open_alert("went_dark", severity="high", subject_kind="chip", subject_id="c1",
                            message="again", details={}, now_unix_ns=now,
                            outbox=["http://a"]) is None
    store.close()
    store = open_store(config)
    due = store.due_outbox(now, 10)
    assert sorted(item.url for item in due) == ["http://a", "http://b"]
    store.outbox_retry(due[0].outbox_id, now + 10**9, "HTTP 500", give_up=False)
    assert [i.url for i in store.due_outbox(now, 10)] == [due[1].url]
    store.close()


class _Receiver(BaseHTTPRequestHandler):
    """A webhook endpoint: records each POST, answers 500 to the first one, 200 afterwards."""

    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    arrived: ClassVar[threading.Condition] = threading.Condition()

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.arrived:
            self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            count = len(self.received)
            self.arrived.notify_all()
        self.send_response(500 if count == 1 else 200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def valid_hmac(secret: str, headers: dict[str, str], body: bytes) -> bool:
    timestamp = headers["x-lightfence-timestamp"]
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(headers["x-lightfence-signature"], f"sha256={mac.hexdigest()}")


def _wait(count: int, timeout_s: float) -> None:
    with _Receiver.arrived:
        _Receiver.arrived.wait_for(lambda: len(_Receiver.received) >= count, timeout_s)


async def wait_for_posts(count: int, timeout_s: float = 10.0) -> None:
    await asyncio.to_thread(_wait, count, timeout_s)


@pytest.mark.asyncio
async def test_webhooks_reach_a_real_receiver_signed_and_retried(tmp_path: Path) -> None:
    _Receiver.received = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/hook"
    secret = "s3cret-for-tests"
    try:
        async with open_harness(tmp_path, webhooks=(WebhookConfig(url, secret),),
                                webhook_backoff_base_s=0.05) as h:
            body = h.fleet.landmark_body("FRA", 50.11, 8.68)
            assert (await h.post("/v1/landmarks", body)).status_code == 200
            batch = h.fleet.batch("FRA", [])
            wire = batch.to_json()
            wire["signature_b64"] = h.fleet.batch("FRA", []).to_json()["signature_b64"]
            r = await h.post("/v1/measurements", wire, await h.token("landmark", "FRA"))
            assert r.status_code == 422  # a forged batch: signature_failure on FRA
            await wait_for_posts(2)  # refused once (500), then retried after the backoff
            (first_headers, first), (second_headers, second) = _Receiver.received[:2]
            assert first == second and valid_hmac(secret, first_headers, first)
            assert valid_hmac(secret, second_headers, second)
            assert not valid_hmac(secret + "x", second_headers, second)
            event = json.loads(second)
            assert event["event"] == "alert.opened"
            assert (event["alert"]["type"], event["alert"]["subject_id"]) == (
                "signature_failure", "FRA")
            r = await h.post(f"/v1/alerts/{event['alert']['alert_id']}/ack",
                             {"reason": "rotating the key"})
            assert r.status_code == 200
            await wait_for_posts(3)
            headers, third = _Receiver.received[2]
            assert valid_hmac(secret, headers, third)
            acked = json.loads(third)
            assert acked["event"] == "alert.acknowledged"
            assert acked["alert"]["acknowledged_reason"] == "rotating the key"
            later = time.time_ns() + 3600 * 10**9
            for _ in range(250):  # the sender marks the row done right after the 200
                if not await h.service.db.run(Store.due_outbox, later, 10):
                    break
                await asyncio.sleep(0.02)
            assert await h.service.db.run(Store.due_outbox, later, 10) == []  # all delivered
            assert len(_Receiver.received) == 3
    finally:
        server.shutdown()
        thread.join(5)
