"""A batch the verifier refuses for good is quarantined and delivery goes on; outages still retry.

Against real HTTP servers on loopback: a scripted stdlib server for every status class, and the
real verifier refusing a batch signed with the landmark's key from before a rotation (422).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from keystore.cert_files import load_landmark_certificate
from landmark_node.config import LandmarkConfig
from landmark_node.service import LandmarkService
from landmark_node.spool import Spool
from landmark_node.uplink import VerifierBatchSink
from protocol.keys import SoftwareSigner
from protocol.records import MeasurementRecord, sign_record
from tests.pki import Pki, make_pki
from tests.served_verifier import serve_verifier
from verifier.app import create_app
from verifier.auth import issue_token
from verifier.config import default_config
from verifier.store import SqliteStore


class ScriptedVerifier(ThreadingHTTPServer):
    """Answers `POST /v1/measurements` with the next scripted status for that batch id (then 200)
    and logs (batch_id, status) in arrival order."""

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _ScriptedHandler)
        self.script: dict[str, list[int]] = {}
        self.log: list[tuple[str, int]] = []
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"

    def __enter__(self) -> ScriptedVerifier:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.shutdown()
        self.server_close()


class _ScriptedHandler(BaseHTTPRequestHandler):
    server: ScriptedVerifier

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        statuses = self.server.script.get(body["batch_id"], [])
        status = statuses.pop(0) if statuses else 200
        self.server.log.append((body["batch_id"], status))
        answer = (
            {"accepted": len(body["records"]), "rejected": [], "duplicate": False}
            if status == 200
            else {"detail": f"scripted refusal {status}"}
        )
        payload = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _config(pki: Pki, tmp_path: Path) -> LandmarkConfig:
    return LandmarkConfig(
        landmark_id="lm-1",
        key_file=pki.root / "keys" / "lm-1.key",
        ca_public_key=pki.ca_pub,
        chip_certs_dir=pki.chip_certs,
        landmark_certs_dir=pki.landmark_certs,
        spool_path=tmp_path / "var" / "spool.sqlite3",
        outbox_dir=tmp_path / "var" / "outbox",
        host="127.0.0.1",
        challenge_port=0,
        responder_port=None,
    )


def _records(signer: SoftwareSigner, count: int) -> list[MeasurementRecord]:
    return [
        sign_record(
            signer,
            landmark_id="lm-1",
            target_kind="chip",
            target_id="sim-0",
            nonce=os.urandom(32),
            sent_unix_ns=time.time_ns(),
            rtt_ns=1_000_000 + i,
            clock_source="kernel",
            challenge=b"challenge",
            response=b"response",
        )
        for i in range(count)
    ]


def _spool_batches(spool: Spool, signer: SoftwareSigner, count: int) -> list[str]:
    """Seal `count` one-record batches signed by `signer`; their ids in delivery order."""
    before = {b.batch_id for b in spool.undelivered()}
    for record in _records(signer, count):
        spool.add_records([record])
        spool.seal_batches(signer, "lm-1", max_records=1)
    return [b.batch_id for b in spool.undelivered() if b.batch_id not in before]


def _service(pki: Pki, tmp_path: Path, url: str, attempts: int = 3) -> LandmarkService:
    client = httpx.AsyncClient(base_url=url, timeout=5.0)
    sink = VerifierBatchSink(client, attempts=attempts, backoff_base_s=0.01)
    return LandmarkService(_config(pki, tmp_path), sink=sink)


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [400, 413, 422])
async def test_refused_batch_is_quarantined_and_later_batches_arrive(
    tmp_path: Path, status: int, caplog: pytest.LogCaptureFixture
) -> None:
    pki = make_pki(tmp_path / "pki", chip_count=0)
    with ScriptedVerifier() as server:
        service = _service(pki, tmp_path, server.url)
        first, second, third = _spool_batches(service.spool, pki.landmark_keys["lm-1"], 3)
        server.script = {first: [status], second: [503, 200]}  # second: one outage, then ok
        with caplog.at_level(logging.ERROR, logger="landmark_node.service"):
            assert await service.deliver_pending() == 2
            assert await service.deliver_pending() == 0  # nothing left, refused one not resent
        assert server.log == [(first, status), (second, 503), (second, 200), (third, 200)]
        assert service.counters()["quarantined_batches"] == 1
        service.spool.close()
    spool = Spool(_config(pki, tmp_path).spool_path)  # kept on disk across a restart
    [(batch, reason)] = spool.quarantined()
    assert batch.batch_id == first and len(batch.records) == 1
    assert f"{status}" in reason and f"scripted refusal {status}" in reason
    assert spool.stats() == {
        "unbatched_records": 0,
        "pending_batches": 0,
        "delivered_batches": 2,
        "quarantined_batches": 1,
    }
    assert any(first in r.getMessage() and "quarantined" in r.getMessage() for r in caplog.records)
    spool.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [429, 500, 503, 401])
async def test_temporary_failure_keeps_order_and_retries(tmp_path: Path, status: int) -> None:
    pki = make_pki(tmp_path / "pki", chip_count=0)
    with ScriptedVerifier() as server:
        service = _service(pki, tmp_path, server.url, attempts=2)
        ids = _spool_batches(service.spool, pki.landmark_keys["lm-1"], 3)
        server.script = {ids[0]: [status] * 100}
        assert await service.deliver_pending() == 0
        assert await service.deliver_pending() == 0
        failed = len(server.log)
        assert failed >= 2 and {batch_id for batch_id, _ in server.log} == {ids[0]}  # rest wait
        assert service.counters()["quarantined_batches"] == 0
        server.script = {}  # the outage (or the token) is fixed: all arrive, in order
        assert await service.deliver_pending() == 3
        assert [batch_id for batch_id, _ in server.log[failed:]] == ids
        service.spool.close()


@pytest.mark.asyncio
async def test_unreachable_verifier_quarantines_nothing(tmp_path: Path) -> None:
    pki = make_pki(tmp_path / "pki", chip_count=0)
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{closed.getsockname()[1]}"  # bound, not listening: refused
        service = _service(pki, tmp_path, url, attempts=2)
        _spool_batches(service.spool, pki.landmark_keys["lm-1"], 2)
        assert await service.deliver_pending() == 0
    assert service.spool.stats()["pending_batches"] == 2
    assert service.spool.quarantined() == []
    service.spool.close()


@pytest.fixture
def real_verifier(tmp_path: Path) -> Iterator[tuple[str, str, Pki]]:
    """(base url, lm-1's landmark token, pki) of a real verifier with lm-1 registered."""
    pki = make_pki(tmp_path / "pki", chip_count=0)
    data_dir = tmp_path / "verifier"
    data_dir.mkdir()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    config = default_config(
        data_dir=data_dir,
        port=port,
        tick_s=0.2,
        ca_public_key_b64=base64.b64encode(pki.ca.public_key()).decode(),
    )
    store = SqliteStore(config.db_path)
    _, admin_token = issue_token(
        store, role="admin", label="ops", landmark_id=None, now_unix_ns=time.time_ns()
    )
    store.close()
    with serve_verifier(create_app(config), port) as url:
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_token}"}) as a:
            certificate = load_landmark_certificate(pki.landmark_certs / "lm-1.json").to_json()
            assert (
                a.post(
                    "/v1/landmarks",
                    json={"certificate": certificate, "host": "127.0.0.1", "port": 9},
                ).status_code
                == 200
            )
            created = a.post(
                "/v1/tokens", json={"role": "landmark", "label": "lm-1", "landmark_id": "lm-1"}
            )
            assert created.status_code == 200
        yield url, str(created.json()["token"]), pki


@pytest.mark.asyncio
async def test_batch_signed_before_a_key_rotation_is_quarantined_by_the_real_verifier(
    tmp_path: Path, real_verifier: tuple[str, str, Pki]
) -> None:
    url, token, pki = real_verifier
    client = httpx.AsyncClient(
        base_url=url, timeout=5.0, headers={"Authorization": f"Bearer {token}"}
    )
    service = LandmarkService(
        _config(pki, tmp_path), sink=VerifierBatchSink(client, backoff_base_s=0.01)
    )
    # Sealed with the key lm-1 had before its certificate was replaced, then with the current one.
    [old] = _spool_batches(service.spool, SoftwareSigner.generate(), 1)
    [new] = _spool_batches(service.spool, pki.landmark_keys["lm-1"], 1)
    assert await service.deliver_pending() == 1
    [(batch, reason)] = service.spool.quarantined()
    assert batch.batch_id == old and "422" in reason and "signature" in reason
    assert service.spool.stats()["delivered_batches"] == 1
    assert service.spool.undelivered() == []
    await client.aclose()
    service.spool.close()
    assert new != old


def test_spool_from_before_quarantine_is_upgraded_without_loss(tmp_path: Path) -> None:
    path = tmp_path / "spool.sqlite3"
    signer = SoftwareSigner.generate()
    spool = Spool(path)
    [batch_id] = _spool_batches(spool, signer, 1)
    spool.close()
    with sqlite3.connect(path) as db:  # the schema as landmarks wrote it before this column
        db.execute("ALTER TABLE batches DROP COLUMN refused")
    spool = Spool(path)
    assert [b.batch_id for b in spool.undelivered()] == [batch_id]
    spool.quarantine(batch_id, "422 test")
    assert spool.stats()["quarantined_batches"] == 1 and spool.undelivered() == []
    spool.close()
