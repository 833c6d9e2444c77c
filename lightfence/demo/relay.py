"""A userspace UDP delay relay: gives every sender-responder path its geographic latency.

Each front stands in front of one responder (a device agent or a landmark's responder). It owns
the responder's public address; a datagram arriving there is held for the one-way delay from the
sender's place to the responder's place (through any proxy hops), then forwarded from a
per-sender upstream socket so that the reply can be matched back, held again on the way back,
and returned to the sender from the public address. Senders are recognised by source IP: every
node binds its own loopback address (127.0.0.0/8 is all loopback).

One thread runs every front with non-blocking sockets, an epoll set and a deadline heap. asyncio
was tried first: its selector rounds timeouts up to whole milliseconds, which added ~2 ms to every
short path (a chip next to its landmark measured 3 ms instead of 1 ms). The thread sleeps in
`select` on the epoll descriptor alone: `select` sleeps to the microsecond (epoll's own timeout
is whole milliseconds), and one descriptor costs ~3 µs per wake-up where `select` over every
socket cost ~440 µs with the demo's ~900 sockets (one per front and sender), added to every
datagram of every round trip. Lateness only ever adds delay, so emulation never makes a proof
tighter than physics allows.

A co-located landmark (in the same data centre as a responder, as a vendor deploys one where a
foreign border is tens of km away) does not come through here for the chips beside it: it
reaches them over its own link (`[[cross_connect]]` in its config). Its paths to anywhere else
follow the model like everyone's.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import random
import select
import socket
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lightfence.demo.geography import PathModel, Place

logger = logging.getLogger(__name__)

Address = tuple[str, int]
_MAX_DATAGRAM_BYTES = 65_535


@dataclass(frozen=True, slots=True)
class FrontSpec:
    public: Address  # what senders address (port 0: pick one)
    upstream: Address  # the real responder
    hops: tuple[Place, ...]  # places after the sender: [proxy..., responder]


@dataclass(slots=True)
class RelayStats:
    forwarded: int = 0
    returned: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class _Front:
    spec: FrontSpec
    sock: socket.socket
    upstreams: dict[Address, socket.socket] = field(default_factory=dict)
    stats: RelayStats = field(default_factory=RelayStats)
    fixed_ms: dict[Place, float] = field(default_factory=dict)  # per sender


class Relay:
    """Every front of one emulated network, served by one thread."""

    def __init__(
        self,
        fronts: Sequence[FrontSpec],
        senders: Mapping[str, Place],
        model: PathModel,
        *,
        loss_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        self._senders = dict(senders)
        self._model = model
        self._loss_rate = loss_rate
        self._rng = random.Random(seed)
        self._fronts = [_Front(spec, self._bind(spec.public)) for spec in fronts]
        self._owner: dict[int, tuple[_Front, Address | None]] = {}
        self._epoll = select.epoll()
        for front in self._fronts:
            self._watch(front.sock, front, None)
        self._heap: list[tuple[float, int, socket.socket, bytes, Address | None]] = []
        self._order = itertools.count()
        self._wake_r, self._wake_w = os.pipe()
        self._epoll.register(self._wake_r, select.EPOLLIN)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="relay", daemon=True)

    @staticmethod
    def _bind(address: Address) -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(address)
        sock.setblocking(False)
        return sock

    def _watch(self, sock: socket.socket, front: _Front, sender: Address | None) -> None:
        self._owner[sock.fileno()] = (front, sender)
        self._epoll.register(sock.fileno(), select.EPOLLIN)

    @property
    def public_addresses(self) -> list[Address]:
        return [front.sock.getsockname()[:2] for front in self._fronts]

    def stats(self, index: int) -> RelayStats:
        return self._fronts[index].stats

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._stopping.set()
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        for front in self._fronts:
            front.sock.close()
            for upstream in front.upstreams.values():
                upstream.close()
        self._epoll.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _delay_s(self, sender: Place, front: _Front) -> float:
        # Geodesics are computed once per path: at a few hundred µs each they would otherwise
        # queue a burst of datagrams behind one another, inflating exactly the short paths.
        fixed_ms = front.fixed_ms.get(sender)
        if fixed_ms is None:
            fixed_ms = front.fixed_ms[sender] = self._model.fixed_ms((sender, *front.spec.hops))
        return (fixed_ms + self._model.jitter_ms(self._rng)) / 1000.0

    def _send(self, sock: socket.socket, data: bytes, to: Address | None) -> None:
        try:
            if to is None:
                sock.send(data)
            else:
                sock.sendto(data, to)
        except OSError as exc:
            logger.debug("relay send failed: %s", exc)

    def _hold(self, delay_s: float, sock: socket.socket, data: bytes,
              to: Address | None) -> None:
        if delay_s <= 0.0:
            self._send(sock, data, to)
            return
        due = time.monotonic() + delay_s
        heapq.heappush(self._heap, (due, next(self._order), sock, data, to))

    def _upstream(self, front: _Front, sender: Address) -> socket.socket:
        sock = front.upstreams.get(sender)
        if sock is None:
            sock = self._bind(("127.0.0.1", 0))
            sock.connect(front.spec.upstream)
            front.upstreams[sender] = sock
            self._watch(sock, front, sender)
        return sock

    def _on_readable(self, fd: int) -> None:
        front, sender = self._owner[fd]
        sock = front.sock if sender is None else front.upstreams[sender]
        while True:
            try:
                data, source = sock.recvfrom(_MAX_DATAGRAM_BYTES)
            except (BlockingIOError, ConnectionRefusedError):
                return
            peer = source[:2] if sender is None else sender
            place = self._senders.get(peer[0])
            if place is None:
                front.stats.dropped["unknown_sender"] += 1
                continue
            if self._loss_rate > 0 and self._rng.random() < self._loss_rate:
                front.stats.dropped["lost"] += 1
                continue
            if sender is None:  # a request: on to the responder through its own upstream
                self._hold(self._delay_s(place, front), self._upstream(front, peer), data, None)
                front.stats.forwarded += 1
            else:  # a reply: back to the sender from the public address
                self._hold(self._delay_s(place, front), front.sock, data, sender)
                front.stats.returned += 1

    def _run(self) -> None:
        while not self._stopping.is_set():
            now = time.monotonic()
            while self._heap and self._heap[0][0] <= now:
                _, _, sock, data, to = heapq.heappop(self._heap)
                self._send(sock, data, to)
            timeout_s = max(0.0, self._heap[0][0] - now) if self._heap else 1.0
            epoll_fd = self._epoll.fileno()
            if not select.select([epoll_fd], [], [], timeout_s)[0]:
                continue
            for fd, _ in self._epoll.poll(0):
                if fd == self._wake_r:
                    os.read(self._wake_r, 64)
                else:
                    self._on_readable(fd)
