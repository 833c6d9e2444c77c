"""A small PKI on disk and UDP helpers shared by the agent and landmark tests."""

from __future__ import annotations

import json
import queue
import random
import socket
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from keystore.cert_files import write_certificate
from keystore.key_files import write_key_file
from protocol.certs import issue_chip_certificate, issue_landmark_certificate
from protocol.codec import to_b64
from protocol.keys import SoftwareSigner

NOT_BEFORE_S, NOT_AFTER_S = 0, 4_000_000_000
T = TypeVar("T")


@dataclass
class Pki:
    root: Path
    ca: SoftwareSigner
    landmarks: dict[str, SoftwareSigner]
    chips: dict[str, SoftwareSigner]

    @property
    def ca_pub(self) -> Path:
        return self.root / "ca.pub.json"

    @property
    def landmark_certs(self) -> Path:
        return self.root / "certs" / "landmarks"

    @property
    def chip_certs(self) -> Path:
        return self.root / "certs" / "chips"

    @property
    def chip_keys(self) -> Path:
        return self.root / "keys" / "chips"


def make_pki(root: Path, landmark_ids: tuple[str, ...] = ("lm-1",), chip_count: int = 2) -> Pki:
    ca = SoftwareSigner.generate()
    pki = Pki(root, ca, {}, {})
    pki.ca_pub.parent.mkdir(parents=True, exist_ok=True)
    pki.ca_pub.write_text(json.dumps({"public_key_b64": to_b64(ca.public_key())}))
    for directory in (pki.landmark_certs, pki.chip_certs, pki.chip_keys):
        directory.mkdir(parents=True, exist_ok=True)
    for landmark_id in landmark_ids:
        signer = SoftwareSigner.generate()
        pki.landmarks[landmark_id] = signer
        write_key_file(root / "keys" / f"{landmark_id}.key", signer)
        write_certificate(
            pki.landmark_certs / f"{landmark_id}.json",
            issue_landmark_certificate(
                ca,
                landmark_id=landmark_id,
                public_key=signer.public_key(),
                lat_deg=50.0,
                lon_deg=8.0,
                not_before_unix_s=NOT_BEFORE_S,
                not_after_unix_s=NOT_AFTER_S,
            ),
        )
    for index in range(chip_count):
        chip_id = f"sim-{index}"
        signer = SoftwareSigner.generate()
        pki.chips[chip_id] = signer
        write_key_file(pki.chip_keys / f"{chip_id}.key", signer)
        write_certificate(
            pki.chip_certs / f"{chip_id}.json",
            issue_chip_certificate(
                ca,
                chip_id=chip_id,
                public_key=signer.public_key(),
                model="simulated",
                serial=f"S{index}",
                not_before_unix_s=NOT_BEFORE_S,
                not_after_unix_s=NOT_AFTER_S,
            ),
        )
    return pki


class LossyRelay:
    """Forwards UDP between one client and `upstream`, dropping `loss` of datagrams each way."""

    def __init__(self, upstream: tuple[str, int], loss: float, seed: int = 7) -> None:
        self._upstream = upstream
        self._loss = loss
        self._random = random.Random(seed)
        self._front = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._front.bind(("127.0.0.1", 0))
        self._back = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._back.bind(("127.0.0.1", 0))
        self.address: tuple[str, int] = self._front.getsockname()
        self._client: tuple[str, int] | None = None
        self.dropped = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._pump, args=(self._front, True), daemon=True),
            threading.Thread(target=self._pump, args=(self._back, False), daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _keep(self) -> bool:
        with self._lock:
            keep = self._random.random() >= self._loss
            self.dropped += not keep
            return keep

    def _pump(self, sock: socket.socket, from_client: bool) -> None:
        sock.settimeout(0.1)
        while not self._stop.is_set():
            try:
                data, source = sock.recvfrom(2048)
            except TimeoutError:
                continue
            except OSError:
                return
            if from_client:
                self._client = source
            if not self._keep():
                continue
            if from_client:
                self._back.sendto(data, self._upstream)
            elif self._client is not None:
                self._front.sendto(data, self._client)

    def close(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=2)
        self._front.close()
        self._back.close()


def drain(records: queue.SimpleQueue[T], count: int, timeout_s: float = 10.0) -> list[T]:
    return [records.get(timeout=timeout_s) for _ in range(count)]
