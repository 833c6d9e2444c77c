import random
import socket
import threading
import time
from collections.abc import Iterator

import pytest

from lightfence.demo.geography import FIBRE_SPEED_KM_PER_S, PathModel, Place
from lightfence.demo.relay import FrontSpec, Relay

FRANKFURT = Place("fra", 50.11, 8.68)
LONDON = Place("lon", 51.51, -0.13)
SINGAPORE = Place("sin", 1.35, 103.82)


@pytest.fixture
def echo_server() -> Iterator[tuple[str, int]]:
    """A responder that answers every datagram with its bytes reversed."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                data, addr = sock.recvfrom(2048)
            except TimeoutError:
                continue
            sock.sendto(data[::-1], addr)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield sock.getsockname()[:2]
    stop.set()
    thread.join()
    sock.close()


def _client(bind_ip: str, timeout_s: float) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind((bind_ip, 0))
    sock.settimeout(timeout_s)
    return sock


def _round_trip_ms(sock: socket.socket, target: tuple[str, int]) -> float:
    start = time.monotonic()
    sock.sendto(b"ping", target)
    data = sock.recv(64)
    assert data == b"gnip"
    return (time.monotonic() - start) * 1000.0


def test_path_model_adds_propagation_along_every_hop() -> None:
    model = PathModel(inflation=1.0, last_mile_ms=0.0, jitter_mean_ms=0.0)
    direct = model.one_way_ms([FRANKFURT, SINGAPORE], random.Random(0))
    via_london = model.one_way_ms([FRANKFURT, LONDON, SINGAPORE], random.Random(0))
    assert direct == pytest.approx(10_260 / FIBRE_SPEED_KM_PER_S * 1000, rel=0.02)
    assert via_london > direct


def test_relay_delays_both_directions_by_geography(echo_server: tuple[str, int]) -> None:
    model = PathModel(inflation=1.5, last_mile_ms=0.3, jitter_mean_ms=0.1)
    relay = Relay([FrontSpec(("127.0.0.1", 0), echo_server, (LONDON,))],
                  {"127.0.0.2": FRANKFURT}, model)
    relay.start()
    floor_ms = 2 * PathModel(1.5, 0.3, 0.0).one_way_ms([FRANKFURT, LONDON], random.Random(0))
    sock = _client("127.0.0.2", timeout_s=2.0)
    try:
        rtts = [_round_trip_ms(sock, relay.public_addresses[0]) for _ in range(5)]
    finally:
        sock.close()
        relay.close()
    assert min(rtts) >= floor_ms
    assert relay.stats(0).forwarded == 5
    assert relay.stats(0).returned == 5


def test_relay_drops_and_counts_unknown_senders_and_losses(
    echo_server: tuple[str, int],
) -> None:
    relay = Relay([FrontSpec(("127.0.0.1", 0), echo_server, (LONDON,))],
                  {"127.0.0.2": FRANKFURT}, PathModel())
    lossy = Relay([FrontSpec(("127.0.0.1", 0), echo_server, (LONDON,))],
                  {"127.0.0.2": FRANKFURT}, PathModel(), loss_rate=1.0)
    relay.start()
    lossy.start()
    stranger = _client("127.0.0.3", timeout_s=0.2)
    known = _client("127.0.0.2", timeout_s=0.2)
    try:
        with pytest.raises(TimeoutError):
            _round_trip_ms(stranger, relay.public_addresses[0])
        with pytest.raises(TimeoutError):
            _round_trip_ms(known, lossy.public_addresses[0])
    finally:
        stranger.close()
        known.close()
        relay.close()
        lossy.close()
    assert relay.stats(0).dropped["unknown_sender"] == 1
    assert relay.stats(0).forwarded == 0
    assert lossy.stats(0).dropped["lost"] == 1
