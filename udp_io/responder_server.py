"""The UDP responder: one thread in a tight blocking `recvfrom` → sign → `sendto` loop.

Why a thread with a blocking socket rather than asyncio: on this machine a raw blocking echo costs
22 µs per round trip against ~50 µs for uvloop and ~130-190 µs for asyncio/asyncio-dgram (see
docs/protocol.md and `python -m benchmarks.timing`); every microsecond here is proof radius. The
hot path does no logging, no disk I/O and no allocation beyond the datagrams; HELLOs and the
optional artificial delay run in their own threads so they never sit in front of a challenge.
"""

from __future__ import annotations

import collections
import heapq
import logging
import queue
import socket
import threading
import time
from collections.abc import Sequence

from protocol.responder import ResponderCore
from protocol.wire import MAX_DATAGRAM_BYTES, MessageType, hello_datagrams

logger = logging.getLogger(__name__)
PROCESSING_SAMPLES = 8192


class ResponderServer:
    """Serves `core` on a UDP socket bound to (`host`, `port`); port 0 picks a free port."""

    def __init__(
        self,
        core: ResponderCore,
        host: str = "0.0.0.0",
        port: int = 0,
        *,
        hello_targets: Sequence[tuple[str, int]] = (),
        hello_interval_s: float = 30.0,
        extra_delay_ns: int = 0,
    ) -> None:
        self.core = core
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._sock = socket.socket(family, socket.SOCK_DGRAM)
        self._sock.bind((host, port))
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self._hello_targets = tuple(hello_targets)
        self._hello_interval_s = hello_interval_s
        self._extra_delay_ns = extra_delay_ns
        self._stopping = threading.Event()
        self._delayed: queue.SimpleQueue[tuple[int, bytes, tuple[str, int]] | None] = (
            queue.SimpleQueue()
        )
        # ns from recvfrom returning to sendto returning, for the last PROCESSING_SAMPLES RESPONSEs
        # (the timed REVEAL → RESPONSE step; READY replies to challenges are not timed).
        self.processing_ns: collections.deque[int] = collections.deque(maxlen=PROCESSING_SAMPLES)
        self.socket_errors = 0
        self._threads = [threading.Thread(target=self._serve, name="responder", daemon=True)]
        if self._hello_targets:
            self._threads.append(threading.Thread(target=self._hello, name="hello", daemon=True))
        if extra_delay_ns > 0:
            self._threads.append(threading.Thread(target=self._delay, name="delay", daemon=True))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._delayed.put(None)
        host = self.address[0]
        wake_host = "::1" if ":" in host else ("127.0.0.1" if host == "0.0.0.0" else host)
        with socket.socket(self._sock.family, socket.SOCK_DGRAM) as waker:
            # An empty datagram wakes the blocking recvfrom so the thread sees the stop flag.
            waker.sendto(b"", (wake_host, self.address[1]))
        for thread in self._threads:
            thread.join(timeout=5)
        self._sock.close()

    def counters(self) -> dict[str, int]:
        snapshot = dict(self.core.counters)
        snapshot["socket_errors"] = self.socket_errors
        return snapshot

    def _serve(self) -> None:
        recvfrom, sendto = self._sock.recvfrom, self._sock.sendto
        handle, clock_ns, mono_ns = self.core.handle_datagram, time.time_ns, time.perf_counter_ns
        samples, delay_ns = self.processing_ns, self._extra_delay_ns
        response_type = MessageType.RESPONSE
        while True:
            try:
                data, source = recvfrom(MAX_DATAGRAM_BYTES + 1)
            except OSError:
                if self._stopping.is_set():
                    return
                self.socket_errors += 1
                continue
            started = mono_ns()
            if self._stopping.is_set():
                return
            reply = handle(data, source[0], clock_ns())
            if reply is None:
                continue
            if delay_ns:
                self._delayed.put((time.monotonic_ns() + delay_ns, reply, source))
                continue
            try:
                sendto(reply, source)
            except OSError:
                self.socket_errors += 1
                continue
            if reply[3] == response_type:
                samples.append(mono_ns() - started)

    def _delay(self) -> None:
        # The delay is constant, so FIFO order is due order; a heap keeps it right regardless.
        heap: list[tuple[int, bytes, tuple[str, int]]] = []
        while not self._stopping.is_set():
            timeout_s = None if not heap else max(0.0, (heap[0][0] - time.monotonic_ns()) / 1e9)
            try:
                item = self._delayed.get(timeout=timeout_s)
            except queue.Empty:
                item = None
            else:
                if item is None:
                    return
                heapq.heappush(heap, item)
            while heap and heap[0][0] <= time.monotonic_ns():
                _, reply, source = heapq.heappop(heap)
                try:
                    self._sock.sendto(reply, source)
                except OSError:
                    self.socket_errors += 1

    def _hello(self) -> None:
        chip_ids = self.core.identity_ids
        while not self._stopping.is_set():
            for datagram in hello_datagrams(time.time_ns(), chip_ids):
                for target in self._hello_targets:
                    try:
                        self._sock.sendto(datagram, target)
                    except OSError as exc:
                        logger.warning("HELLO to %s:%d failed: %s", target[0], target[1], exc)
            self._stopping.wait(self._hello_interval_s)
