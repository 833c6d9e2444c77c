"""A userspace UDP delay relay: gives every sender-responder path its geographic latency.

One `RelayFront` stands in front of one responder (a device agent or a landmark's responder). It
owns the responder's public address; each datagram arriving there is held for the one-way delay
from the sender's place to the responder's place (through any proxy hops), then forwarded from a
per-sender upstream socket so that the reply can be matched back, held again on the way back, and
returned to the sender from the public address. Senders are recognised by source IP: every node in
the demo binds its own loopback address (127.0.0.0/8 is all loopback).

Delay is scheduled with `loop.call_later`, whose overshoot (~0.3 ms here) only ever adds delay.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from lightfence.demo.geography import PathModel, Place

logger = logging.getLogger(__name__)

Address = tuple[str, int]


@dataclass(slots=True)
class RelayStats:
    forwarded: int = 0
    returned: int = 0
    dropped: Counter[str] = field(default_factory=Counter)


class _FrontProtocol(asyncio.DatagramProtocol):
    def __init__(self, front: RelayFront) -> None:
        self._front = front

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._front.on_request(data, addr)


class _UpstreamProtocol(asyncio.DatagramProtocol):
    def __init__(self, front: RelayFront, sender: Address) -> None:
        self._front = front
        self._sender = sender

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._front.on_reply(data, self._sender)


class RelayFront:
    """Relay for one responder. `hops` are the places after the sender: [proxy..., responder]."""

    def __init__(
        self,
        public: Address,
        upstream: Address,
        hops: Sequence[Place],
        senders: Mapping[str, Place],
        model: PathModel,
        *,
        loss_rate: float = 0.0,
        seed: int = 0,
    ) -> None:
        if not hops:
            raise ValueError("a relay needs at least the responder's place")
        self.public = public
        self.upstream = upstream
        self.hops = tuple(hops)
        self.senders = dict(senders)
        self.model = model
        self.loss_rate = loss_rate
        self.stats = RelayStats()
        self._rng = random.Random(seed)
        self._front: asyncio.DatagramTransport | None = None
        self._upstreams: dict[Address, asyncio.DatagramTransport] = {}
        self._pending: dict[Address, list[bytes]] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _FrontProtocol(self), local_addr=self.public
        )
        self._front = transport
        self.public = transport.get_extra_info("sockname")[:2]

    def close(self) -> None:
        if self._front is not None:
            self._front.close()
        for transport in self._upstreams.values():
            transport.close()
        self._upstreams.clear()

    def _delay_s(self, sender_place: Place) -> float:
        return self.model.one_way_ms((sender_place, *self.hops), self._rng) / 1000.0

    def _lost(self) -> bool:
        return self.loss_rate > 0 and self._rng.random() < self.loss_rate

    def on_request(self, data: bytes, sender: Address) -> None:
        place = self.senders.get(sender[0])
        if place is None:
            self.stats.dropped["unknown_sender"] += 1
            return
        if self._lost():
            self.stats.dropped["lost"] += 1
            return
        asyncio.get_running_loop().call_later(self._delay_s(place), self._forward, data, sender)

    def _forward(self, data: bytes, sender: Address) -> None:
        transport = self._upstreams.get(sender)
        if transport is not None:
            transport.sendto(data)
            self.stats.forwarded += 1
            return
        queue = self._pending.setdefault(sender, [])
        queue.append(data)
        if len(queue) == 1:
            asyncio.get_running_loop().create_task(self._open_upstream(sender))

    async def _open_upstream(self, sender: Address) -> None:
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UpstreamProtocol(self, sender), remote_addr=self.upstream
            )
        except OSError:
            logger.warning("relay %s cannot reach upstream %s", self.public, self.upstream)
            self.stats.dropped["upstream_unreachable"] += len(self._pending.pop(sender, []))
            return
        self._upstreams[sender] = transport
        for data in self._pending.pop(sender, []):
            transport.sendto(data)
            self.stats.forwarded += 1

    def on_reply(self, data: bytes, sender: Address) -> None:
        place = self.senders[sender[0]]
        if self._lost():
            self.stats.dropped["lost"] += 1
            return
        asyncio.get_running_loop().call_later(self._delay_s(place), self._return, data, sender)

    def _return(self, data: bytes, sender: Address) -> None:
        if self._front is None:
            return
        self._front.sendto(data, sender)
        self.stats.returned += 1
