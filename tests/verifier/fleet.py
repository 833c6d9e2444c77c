"""Test helpers: the shared PKI's CA, landmarks and chips (tests/pki.py) with real signed
measurement batches."""

from __future__ import annotations

import secrets
import time
from typing import Any

from protocol.keys import SoftwareSigner
from protocol.records import MeasurementBatch, MeasurementRecord, sign_batch, sign_record
from protocol.wire import sign_challenge, sign_response
from tests.pki import Pki


class Fleet(Pki):
    """The shared test PKI (tests/pki.py) plus registration bodies and signed measurements."""

    def landmark_body(self, landmark_id: str, lat_deg: float, lon_deg: float,
                      port: int = 7000) -> dict[str, Any]:
        cert = self.landmark_certificate(landmark_id, lat_deg, lon_deg)
        return {"certificate": cert.to_json(), "host": "127.0.0.1", "port": port}

    def chip_body(self, chip_id: str, licence: dict[str, Any],
                  policy: str = "default", key_protection: str = "software") -> dict[str, Any]:
        cert = self.chip_certificate(chip_id, key_protection=key_protection)
        return {"certificate": cert.to_json(), "owner": "acme", "host": "127.0.0.1",
                "port": 9000, "licence": licence, "policy": policy}

    def record(self, landmark_id: str, target_id: str, rtt_ms: float, *,
               target_kind: str = "chip", sent_unix_ns: int | None = None,
               nonce: bytes | None = None, target_key: SoftwareSigner | None = None,
               round_id: str | None = None, task_id: int = 0) -> MeasurementRecord:
        """A signed record; version 1 (no task named) unless `round_id` is given."""
        landmark = self.landmark_keys[landmark_id]
        signer = target_key or (self.chip_keys[target_id] if target_kind == "chip"
                                else self.landmark_keys[target_id])
        sent = sent_unix_ns if sent_unix_ns is not None else time.time_ns()
        nonce = nonce or secrets.token_bytes(32)
        challenge = sign_challenge(landmark, landmark_id=landmark_id, target_id=target_id,
                                   nonce=nonce, issued_unix_ns=sent - 1_000,
                                   expires_unix_ns=sent + 5_000_000_000, sequence=1).encode()
        response = sign_response(signer, challenge, nonce).encode()
        return sign_record(landmark, landmark_id=landmark_id, target_kind=target_kind,
                           target_id=target_id, nonce=nonce, sent_unix_ns=sent,
                           rtt_ns=int(rtt_ms * 1e6), clock_source="monotonic",
                           challenge=challenge, response=response, round_id=round_id,
                           task_id=task_id)

    def batch(self, landmark_id: str, records: list[MeasurementRecord],
              batch_id: str | None = None) -> MeasurementBatch:
        return sign_batch(self.landmark_keys[landmark_id],
                          batch_id or f"b-{secrets.token_hex(8)}", landmark_id, tuple(records))
