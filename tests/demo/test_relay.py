import asyncio
import random
import socket
import time
import typing

import pytest

from lightfence.demo.geography import FIBRE_SPEED_KM_PER_S, PathModel, Place
from lightfence.demo.relay import RelayFront

FRANKFURT = Place("fra", 50.11, 8.68)
LONDON = Place("lon", 51.51, -0.13)
SINGAPORE = Place("sin", 1.35, 103.82)


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = typing.cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.transport.sendto(data[::-1], addr)


async def _echo_server() -> asyncio.DatagramTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    return transport


def _client(bind_ip: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((bind_ip, 0))
    sock.setblocking(False)
    return sock


async def _round_trip(sock: socket.socket, target: tuple[str, int], timeout_s: float) -> float:
    loop = asyncio.get_running_loop()
    start = time.monotonic()
    await loop.sock_sendto(sock, b"ping", target)
    data = await asyncio.wait_for(loop.sock_recv(sock, 64), timeout_s)
    assert data == b"gnip"
    return (time.monotonic() - start) * 1000.0


def test_path_model_adds_propagation_along_every_hop() -> None:
    model = PathModel(inflation=1.0, last_mile_ms=0.0, jitter_mean_ms=0.0)
    direct = model.one_way_ms([FRANKFURT, SINGAPORE], random.Random(0))
    via_london = model.one_way_ms([FRANKFURT, LONDON, SINGAPORE], random.Random(0))
    assert direct == pytest.approx(10_260 / FIBRE_SPEED_KM_PER_S * 1000, rel=0.02)
    assert via_london > direct


@pytest.mark.asyncio
async def test_relay_delays_both_directions_by_geography() -> None:
    server = await _echo_server()
    model = PathModel(inflation=1.5, last_mile_ms=0.3, jitter_mean_ms=0.1)
    front = RelayFront(
        ("127.0.0.1", 0), server.get_extra_info("sockname")[:2], [LONDON],
        {"127.0.0.2": FRANKFURT}, model,
    )
    await front.start()
    floor_ms = 2 * PathModel(1.5, 0.3, 0.0).one_way_ms([FRANKFURT, LONDON], random.Random(0))
    sock = _client("127.0.0.2")
    try:
        rtts = [await _round_trip(sock, front.public, timeout_s=2.0) for _ in range(5)]
    finally:
        sock.close()
        front.close()
        server.close()
    assert min(rtts) >= floor_ms
    assert front.stats.forwarded == 5
    assert front.stats.returned == 5


@pytest.mark.asyncio
async def test_relay_drops_and_counts_unknown_senders_and_losses() -> None:
    server = await _echo_server()
    upstream = server.get_extra_info("sockname")[:2]
    front = RelayFront(("127.0.0.1", 0), upstream, [LONDON], {"127.0.0.2": FRANKFURT}, PathModel())
    lossy = RelayFront(
        ("127.0.0.1", 0), upstream, [LONDON], {"127.0.0.2": FRANKFURT}, PathModel(), loss_rate=1.0
    )
    await front.start()
    await lossy.start()
    stranger = _client("127.0.0.3")
    known = _client("127.0.0.2")
    try:
        with pytest.raises(TimeoutError):
            await _round_trip(stranger, front.public, timeout_s=0.2)
        with pytest.raises(TimeoutError):
            await _round_trip(known, lossy.public, timeout_s=0.2)
    finally:
        stranger.close()
        known.close()
        front.close()
        lossy.close()
        server.close()
    assert front.stats.dropped["unknown_sender"] == 1
    assert front.stats.forwarded == 0
    assert lossy.stats.dropped["lost"] == 1
