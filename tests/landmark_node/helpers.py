"""UDP helpers shared by the agent and landmark tests (their PKI: tests/pki.py)."""

from __future__ import annotations

import queue
import random
import socket
import threading
from typing import TypeVar

T = TypeVar("T")


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
