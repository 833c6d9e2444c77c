"""A real verifier on a loopback port, fed by simulated landmarks over its real HTTP API.

The landmarks here do everything a landmark node does except the UDP round trip: they poll
their tasks, sign challenges, have the chip's key sign the response, and upload signed batches.
The RTT they report is what light in fibre would take from the chip's true position (1.5× the
vacuum bound plus a fixed overhead), so the verifier's own solver, verdicts and alerts produce
everything the dashboard shows. Chips listed in `silent` never answer, and go dark.
"""

from __future__ import annotations

import base64
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from geo.constants import C_VACUUM_KM_PER_S
from geo.geodesy import distance_km
from protocol.keys import SoftwareSigner
from protocol.records import sign_batch, sign_record
from protocol.wire import sign_challenge, sign_response
from tests.pki import Pki
from verifier.app import create_app
from verifier.auth import issue_token
from verifier.config import default_config
from verifier.store import SqliteStore

FIBRE_INFLATION = 1.5
OVERHEAD_MS = 0.2
CERT_LIFETIME_S = 86_400


@dataclass(frozen=True, slots=True)
class Place:
    ident: str
    lat_deg: float
    lon_deg: float


@dataclass
class Fleet:
    """The running verifier, its tokens, and the simulated landmarks' state."""

    base_url: str
    admin_token: str
    dashboard_token: str
    pki: Pki  # its CA signs every landmark's and chip's certificate (tests/pki.py)
    landmark_tokens: dict[str, str]
    landmarks: dict[str, Place]
    chip_places: dict[str, Place] = field(default_factory=dict)
    silent: set[str] = field(default_factory=set)
    stop: threading.Event = field(default_factory=threading.Event)
    server_errors: list[str] = field(default_factory=list)

    def client(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10.0,
                            headers={"Authorization": f"Bearer {token}"})

    def put_policy(self, name: str, *, round_interval_s: float, round_timeout_s: float,
                   dark_window_s: float, landmarks_per_round: int) -> None:
        with self.client(self.admin_token) as admin:
            admin.put(f"/v1/policies/{name}", json={
                "round_interval_s": round_interval_s, "landmarks_per_round": landmarks_per_round,
                "round_timeout_s": round_timeout_s, "dark_window_s": dark_window_s,
            }).raise_for_status()

    def add_landmark(self, place: Place, port: int) -> None:
        cert = self.pki.landmark_certificate(place.ident, place.lat_deg, place.lon_deg)
        with self.client(self.admin_token) as admin:
            admin.post("/v1/landmarks", json={
                "certificate": cert.to_json(), "host": "127.0.0.1", "port": port,
            }).raise_for_status()
            created = admin.post("/v1/tokens", json={
                "role": "landmark", "label": place.ident, "landmark_id": place.ident,
            })
            created.raise_for_status()
        self.landmark_tokens[place.ident] = created.json()["token"]
        self.landmarks[place.ident] = place

    def add_chip(self, place: Place, *, owner: str, allowed: list[Any], policy: str,
                 silent: bool = False) -> None:
        cert = self.pki.chip_certificate(place.ident, serial=f"SN-{place.ident}")
        self.chip_places[place.ident] = place
        if silent:
            self.silent.add(place.ident)
        with self.client(self.admin_token) as admin:
            admin.post("/v1/chips", json={
                "certificate": cert.to_json(), "owner": owner, "host": "127.0.0.1",
                "port": 9, "licence": {"allowed": allowed, "prohibited": [], "tolerance_km": 0},
                "policy": policy,
            }).raise_for_status()

    def rtt_ns(self, landmark: Place, target: Place) -> int:
        km = distance_km(landmark.lat_deg, landmark.lon_deg, target.lat_deg, target.lon_deg)
        rtt_ms = 2 * km * FIBRE_INFLATION / C_VACUUM_KM_PER_S * 1_000 + OVERHEAD_MS
        return int(rtt_ms * 1_000_000)

    def answer_tasks(self, landmark_id: str, client: httpx.Client) -> None:
        """One poll of one landmark: answer every task whose target is not silent."""
        response = client.get(f"/v1/landmarks/{landmark_id}/tasks", params={"wait_s": 0})
        if response.status_code >= 500:
            # A real landmark retries on the next poll; record it so a test can show it.
            self.server_errors.append(f"GET tasks {landmark_id}: {response.text[:300]}")
            return
        response.raise_for_status()
        key = self.pki.landmark_keys[landmark_id]
        records = []
        for task in response.json()["tasks"]:
            target_id = task["target_id"]
            if task["target_kind"] == "chip":
                if target_id in self.silent or target_id not in self.pki.chip_keys:
                    continue
                target_key = self.pki.chip_keys[target_id]
                target_place = self.chip_places[target_id]
            else:
                target_key = self.pki.landmark_keys[target_id]
                target_place = self.landmarks[target_id]
            sent_unix_ns = time.time_ns()
            nonce = secrets.token_bytes(32)
            challenge = sign_challenge(
                key, landmark_id=landmark_id, target_id=target_id, nonce=nonce,
                issued_unix_ns=sent_unix_ns, expires_unix_ns=sent_unix_ns + 10_000_000_000,
                sequence=task["task_id"]).encode()
            answer = sign_response(target_key, challenge, nonce)
            records.append(sign_record(
                key, landmark_id=landmark_id, target_kind=task["target_kind"],
                target_id=target_id, nonce=nonce,
                sent_unix_ns=sent_unix_ns,
                rtt_ns=self.rtt_ns(self.landmarks[landmark_id], target_place),
                clock_source="monotonic", challenge=challenge, response=answer.encode()))
        if records:
            batch = sign_batch(key, f"b-{secrets.token_hex(8)}", landmark_id, tuple(records))
            posted = client.post("/v1/measurements", json=batch.to_json())
            if posted.status_code >= 500:
                self.server_errors.append(f"POST batch {landmark_id}: {posted.text[:300]}")
                return
            posted.raise_for_status()

    def run_landmarks(self, period_s: float = 0.3) -> None:
        clients = {lm: self.client(token) for lm, token in self.landmark_tokens.items()}
        try:
            while not self.stop.wait(period_s):
                for landmark_id, client in clients.items():
                    try:
                        self.answer_tasks(landmark_id, client)
                    except httpx.TransportError as exc:
                        # A verifier too loaded to answer in time (10 s): a real landmark
                        # retries on its next poll, and so does this one.
                        self.server_errors.append(f"{landmark_id}: {exc!r}")
        finally:
            for client in clients.values():
                client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def start_verifier(data_dir: Path, ca: SoftwareSigner) -> tuple[uvicorn.Server, threading.Thread,
                                                               str, str, str]:
    """Starts the verifier app under uvicorn in a thread; returns it and admin/dashboard tokens."""
    data_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = default_config(
        data_dir=data_dir, port=port, tick_s=0.2, min_key_protection="software",
        ca_public_key_b64=base64.b64encode(ca.public_key()).decode())
    store = SqliteStore(config.db_path)
    now_ns = time.time_ns()
    _, admin = issue_token(store, role="admin", label="officer", landmark_id=None,
                           now_unix_ns=now_ns)
    _, dashboard = issue_token(store, role="dashboard", label="viewer", landmark_id=None,
                               now_unix_ns=now_ns)
    store.close()
    server = uvicorn.Server(uvicorn.Config(create_app(config), host="127.0.0.1", port=port,
                                           log_level="warning", lifespan="on",
                                           timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, name="verifier", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("verifier did not start")
        time.sleep(0.05)
    return server, thread, f"http://127.0.0.1:{port}", admin, dashboard
