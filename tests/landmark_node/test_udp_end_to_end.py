"""A real landmark prober against a real agent responder over UDP on loopback."""

from __future__ import annotations

import queue
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from landmark_node.prober import Prober
from protocol.challenger import ChallengerConfig, ChallengerCore, Target
from protocol.keys import SoftwareSigner
from protocol.records import NO_TASK_ID, MeasurementRecord, verify_record
from protocol.responder import ResponderCore
from protocol.wire import (
    ErrorCode,
    ErrorMessage,
    Ready,
    Response,
    Reveal,
    decode,
    nonce_commitment,
    sign_challenge,
    verify_response,
)
from tests.landmark_node.helpers import LossyRelay, drain
from tests.pki import Pki, make_pki
from udp_io.responder_server import ResponderServer

MS = 1_000_000


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return make_pki(tmp_path)


@pytest.fixture
def agent(pki: Pki) -> Iterator[ResponderServer]:
    core = ResponderCore(dict(pki.chip_keys), {"lm-1": pki.landmark_keys["lm-1"].public_key()})
    server = ResponderServer(core, "127.0.0.1", 0)
    server.start()
    yield server
    server.stop()


def start_prober(
    pki: Pki, signer: SoftwareSigner | None = None, **config: int
) -> tuple[Prober, queue.SimpleQueue[MeasurementRecord]]:
    records: queue.SimpleQueue[MeasurementRecord] = queue.SimpleQueue()
    core = ChallengerCore(
        "lm-1",
        signer or pki.landmark_keys["lm-1"],
        ChallengerConfig(**{"timeout_ns": 200 * MS, "max_attempts": 2, **config}),
    )
    prober = Prober(core, "127.0.0.1", 0, records.put)
    prober.start()
    return prober, records


def target(pki: Pki, address: tuple[str, int], chip_id: str = "sim-0") -> Target:
    key = pki.chip_keys[chip_id].public_key() if chip_id in pki.chip_keys else bytes(32)
    return Target("chip", chip_id, address[0], address[1], key, "r1", NO_TASK_ID)


def wait_for(predicate: object, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.01)
    raise AssertionError("condition not reached")


def test_valid_round_trip_gives_verifiable_kernel_timed_record(
    pki: Pki, agent: ResponderServer
) -> None:
    prober, records = start_prober(pki)
    try:
        prober.submit([target(pki, agent.address)])
        (record,) = drain(records, 1)
    finally:
        prober.stop()
    assert isinstance(record, MeasurementRecord)
    verify_record(
        record, pki.landmark_keys["lm-1"].public_key(), pki.chip_keys["sim-0"].public_key()
    )
    assert record.target_id == "sim-0" and 0 < record.rtt_ns < 1_000 * MS
    expected = ("kernel-tx" if prober.tx_timestamps
                else "kernel" if prober.kernel_timestamps else "monotonic")
    assert record.clock_source == expected
    assert agent.counters()["answered"] == 1


def test_forged_chip_signature_gives_no_measurement(pki: Pki) -> None:
    impostor = ResponderCore(
        {"sim-0": SoftwareSigner.generate()}, {"lm-1": pki.landmark_keys["lm-1"].public_key()}
    )
    server = ResponderServer(impostor, "127.0.0.1", 0)
    server.start()
    prober, records = start_prober(pki)
    try:
        prober.submit([target(pki, server.address)])
        wait_for(lambda: prober.core.counters["gave_up"] == 1)
    finally:
        prober.stop()
        server.stop()
    assert records.empty()
    assert prober.core.counters["dropped_bad_signature"] == 2  # both attempts answered, both forged


def test_unknown_landmark_is_ignored(pki: Pki, agent: ResponderServer) -> None:
    prober, records = start_prober(pki, signer=SoftwareSigner.generate())  # claims lm-1, wrong key
    try:
        prober.submit([target(pki, agent.address)])
        wait_for(lambda: prober.core.counters["gave_up"] == 1)
    finally:
        prober.stop()
    assert records.empty()
    assert agent.counters()["dropped_bad_signature"] == 2 and agent.counters()["answered"] == 0


def raw_exchange(address: tuple[str, int], datagrams: list[bytes]) -> list[bytes | None]:
    replies: list[bytes | None] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.3)
        for datagram in datagrams:
            sock.sendto(datagram, address)
            try:
                replies.append(sock.recv(2048))
            except TimeoutError:
                replies.append(None)
    return replies


def challenge_bytes(pki: Pki, chip_id: str, nonce: bytes, issued_unix_ns: int) -> bytes:
    return sign_challenge(
        pki.landmark_keys["lm-1"],
        landmark_id="lm-1",
        target_id=chip_id,
        nonce=nonce,
        issued_unix_ns=issued_unix_ns,
        expires_unix_ns=issued_unix_ns + 2_000 * MS,
        sequence=1,
    ).encode()


def test_replayed_expired_and_misaddressed_challenges(pki: Pki, agent: ResponderServer) -> None:
    now = time.time_ns()
    fresh = challenge_bytes(pki, "sim-0", b"f" * 32, now)
    expired = challenge_bytes(pki, "sim-0", b"e" * 32, now - 60_000 * MS)
    wrong_chip = challenge_bytes(pki, "gpu-elsewhere", b"w" * 32, now)
    first, replay, late, elsewhere = raw_exchange(
        agent.address, [fresh, fresh, expired, wrong_chip]
    )
    assert first is not None and decode(first) == Ready(nonce_commitment(b"f" * 32))
    assert replay is None
    assert late is not None
    assert decode(late) == ErrorMessage(ErrorCode.EXPIRED, nonce_commitment(b"e" * 32))
    assert elsewhere is not None
    assert decode(elsewhere) == ErrorMessage(ErrorCode.UNKNOWN_TARGET, nonce_commitment(b"w" * 32))
    reveal = Reveal(b"f" * 32).encode()
    wrong = Reveal(b"x" * 32).encode()
    answer, replayed_reveal, guessed = raw_exchange(agent.address, [reveal, reveal, wrong])
    assert answer is not None and len(answer) <= len(reveal)
    response = decode(answer)
    assert isinstance(response, Response)
    verify_response(response, fresh, pki.chip_keys["sim-0"].public_key())
    assert replayed_reveal is None and guessed is None
    counters = agent.counters()
    assert counters["dropped_replay"] == 1 and counters["dropped_expired"] == 1
    assert counters["dropped_unknown_target"] == 1 and counters["answered"] == 1
    assert counters["dropped_unknown_commitment"] == 2


def test_garbage_is_dropped_counted_and_agent_keeps_serving(
    pki: Pki, agent: ResponderServer
) -> None:
    fresh = challenge_bytes(pki, "sim-0", b"g" * 32, time.time_ns())
    replies = raw_exchange(
        agent.address,
        [fresh[:-1], b"\xff" * 1500, bytes(range(200)), b"LF\x01", fresh,
         Reveal(b"g" * 32).encode()],
    )
    assert replies[:4] == [None, None, None, None]
    assert replies[4] is not None and isinstance(decode(replies[4]), Ready)
    assert replies[5] is not None and isinstance(decode(replies[5]), Response)
    counters = agent.counters()
    assert counters["dropped_malformed"] == 3 and counters["dropped_oversized"] == 1
    assert counters["answered"] == 1


def test_twenty_percent_loss_still_measures_every_target(pki: Pki, agent: ResponderServer) -> None:
    relay = LossyRelay(agent.address, loss=0.2)
    prober, records = start_prober(pki, timeout_ns=50 * MS, max_attempts=10)
    try:
        prober.submit([target(pki, relay.address, f"sim-{i % 2}") for i in range(12)])
        measured = drain(records, 12)
    finally:
        prober.stop()
        relay.close()
    assert len({r.nonce for r in measured if isinstance(r, MeasurementRecord)}) == 12
    assert relay.dropped > 0 and prober.core.counters["retries"] > 0
    assert prober.core.counters["gave_up"] == 0
