"""Test helpers: a CA, landmarks and chips with real keys, and real signed measurement batches."""

from __future__ import annotations

import base64
import secrets
import time
from dataclasses import dataclass
from typing import Any

from protocol.certs import issue_chip_certificate, issue_landmark_certificate
from protocol.keys import SoftwareSigner
from protocol.records import MeasurementBatch, MeasurementRecord, sign_batch, sign_record
from protocol.wire import sign_challenge, sign_response

YEAR_S = 365 * 86_400


@dataclass
class Fleet:
    ca: SoftwareSigner
    landmark_keys: dict[str, SoftwareSigner]
    chip_keys: dict[str, SoftwareSigner]

    @classmethod
    def create(cls) -> Fleet:
        return cls(SoftwareSigner.generate(), {}, {})

    @property
    def ca_b64(self) -> str:
        return base64.b64encode(self.ca.public_key()).decode()

    def landmark_body(self, landmark_id: str, lat_deg: float, lon_deg: float,
                      port: int = 7000) -> dict[str, Any]:
        key = self.landmark_keys.setdefault(landmark_id, SoftwareSigner.generate())
        now = int(time.time())
        cert = issue_landmark_certificate(
            self.ca, landmark_id=landmark_id, public_key=key.public_key(), lat_deg=lat_deg,
            lon_deg=lon_deg, not_before_unix_s=now - 60, not_after_unix_s=now + YEAR_S)
        return {"certificate": cert.to_json(), "host": "127.0.0.1", "port": port}

    def chip_body(self, chip_id: str, licence: dict[str, Any],
                  policy: str = "default", key_protection: str = "software") -> dict[str, Any]:
        key = self.chip_keys.setdefault(chip_id, SoftwareSigner.generate())
        now = int(time.time())
        cert = issue_chip_certificate(
            self.ca, chip_id=chip_id, public_key=key.public_key(), model="H100",
            serial=f"S-{chip_id}", not_before_unix_s=now - 60, not_after_unix_s=now + YEAR_S,
            key_protection=key_protection)
        return {"certificate": cert.to_json(), "owner": "acme", "host": "127.0.0.1",
                "port": 9000, "licence": licence, "policy": policy}

    def record(self, landmark_id: str, target_id: str, rtt_ms: float, *,
               target_kind: str = "chip", sent_unix_ns: int | None = None,
               nonce: bytes | None = None, target_key: SoftwareSigner | None = None
               ) -> MeasurementRecord:
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
                           challenge=challenge, response=response)

    def batch(self, landmark_id: str, records: list[MeasurementRecord],
              batch_id: str | None = None) -> MeasurementBatch:
        return sign_batch(self.landmark_keys[landmark_id],
                          batch_id or f"b-{secrets.token_hex(8)}", landmark_id, tuple(records))
