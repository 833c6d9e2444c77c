"""Kernel send stamps are matched to their own packet by OPT_ID key; a stamp of another packet,
late or reordered, never shortens an RTT."""

from __future__ import annotations

import socket
import time

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.challenger import ChallengerConfig, ChallengerCore, Outgoing, RxTime, Target
from protocol.keys import SoftwareSigner
from protocol.records import MeasurementRecord
from protocol.responder import ResponderCore
from udp_io.timestamps import (
    enable_tx_timestamps,
    explicit_tx_keys_supported,
    read_tx_stamps,
    send_tx_stamped,
)
from udp_io.txstamps import KEY_MODULUS, TxStampMatcher

LANDMARK = SoftwareSigner(bytes(range(32)))
CHIPS = {f"gpu-{i}": SoftwareSigner(bytes(range(32 + i, 64 + i))) for i in range(3)}
T0_UNIX_NS = 1_700_000_000_000_000_000
MS = 1_000_000


def test_reordered_stamps_go_to_their_own_sends() -> None:
    matcher = TxStampMatcher(explicit_keys=False)
    for commitment in (b"a", b"b", b"c"):
        key = matcher.next_key()
        assert key is not None
        matcher.sent(key, commitment)
    assert matcher.match(2, 300) == (b"c", 300)  # the newest packet's stamp comes first
    assert matcher.match(0, 100) == (b"a", 100)
    assert matcher.match(0, 100) is None  # a duplicate or stale key is nobody's
    assert matcher.match(7, 700) is None  # a key no send of ours holds
    assert matcher.match(1, 200) == (b"b", 200)
    assert matcher.counters == {"tx_matched": 3, "tx_unmatched": 2, "tx_send_failures": 0}


def test_a_failed_send_stops_counted_keys_but_not_named_ones() -> None:
    counted = TxStampMatcher(explicit_keys=False)
    counted.sent(0, b"a")
    counted.send_failed()  # the kernel may have used number 1: later numbers are unknown
    assert counted.next_key() is None
    assert counted.match(0, 100) == (b"a", 100)  # stamps of earlier sends still count
    named = TxStampMatcher(explicit_keys=True)
    named.sent(0, b"a")
    named.send_failed()
    assert named.next_key() == 2  # key 1 may be in flight; never named twice


def test_keys_wrap_and_forgotten_sends_match_nothing() -> None:
    matcher = TxStampMatcher(explicit_keys=True, max_outstanding=2)
    matcher.sent(KEY_MODULUS - 1, b"a")
    assert matcher.next_key() == 0
    matcher.sent(0, b"b")
    matcher.sent(1, b"c")  # b"a" is forgotten: at most two sends await a stamp
    assert matcher.match(KEY_MODULUS - 1, 100) is None
    assert matcher.match(0, 200) == (b"b", 200)


def _send_reveal(
    core: ChallengerCore, responder: ResponderCore, target: Target, now_ns: int
) -> Outgoing:
    out = core.challenge(target, T0_UNIX_NS + now_ns)
    core.mark_sent(out, T0_UNIX_NS + now_ns, now_ns)
    ready = responder.handle_datagram(out.datagram, "10.0.0.1", T0_UNIX_NS + now_ns)
    assert ready is not None
    reveal = core.receive(
        ready, (target.host, target.port), RxTime(None, T0_UNIX_NS + now_ns, now_ns)
    )
    assert isinstance(reveal, Outgoing) and reveal.timed
    return reveal


@settings(max_examples=150, deadline=None)
@given(
    queue_ns=st.lists(st.integers(0, 50 * MS), min_size=3, max_size=3),
    true_rtt_ns=st.lists(st.integers(MS // 10, 20 * MS), min_size=3, max_size=3),
    stamp_lag_ns=st.lists(st.none() | st.integers(0, 50 * MS), min_size=3, max_size=3),
    explicit=st.booleans(),
)
def test_no_stamp_order_shortens_an_rtt(
    queue_ns: list[int], true_rtt_ns: list[int], stamp_lag_ns: list[int | None], explicit: bool
) -> None:
    """Three REVEALs leave after queueing (qdisc, driver), their stamps come back late, in any
    order or not at all, interleaved with the answers. Every RTT is at least the wire round trip,
    and exactly it when the packet's own stamp beat its answer."""
    core = ChallengerCore(
        "lm-1",
        LANDMARK,
        ChallengerConfig(timeout_ns=500 * MS, max_attempts=1, lifetime_ns=2000 * MS),
    )
    responder = ResponderCore(dict(CHIPS), {"lm-1": LANDMARK.public_key()})
    matcher = TxStampMatcher(explicit_keys=explicit)
    # (time, 0 for a stamp / 1 for an answer, packet index): a stamp and an answer at the same
    # nanosecond are taken stamp first.
    events: list[tuple[int, int, int]] = []
    sends: list[tuple[int, bytes, Target, int]] = []  # (key, answer, target, left_ns)
    for i, chip_id in enumerate(CHIPS):
        target = Target("chip", chip_id, f"10.0.0.{i + 2}", 7500, CHIPS[chip_id].public_key(),
                        "r1", i + 1)
        read_ns = 10 * MS + i * MS  # the clock read just before this REVEAL's sendmsg
        reveal = _send_reveal(core, responder, target, read_ns)
        core.mark_sent(reveal, T0_UNIX_NS + read_ns, read_ns)
        key = matcher.next_key()
        assert key is not None
        matcher.sent(key, reveal.commitment)
        left_ns = read_ns + queue_ns[i]
        answer = responder.handle_datagram(reveal.datagram, "10.0.0.1", T0_UNIX_NS + left_ns)
        assert answer is not None
        sends.append((key, answer, target, left_ns))
        events.append((left_ns + true_rtt_ns[i], 1, i))
        lag = stamp_lag_ns[i]
        if lag is not None:
            events.append((left_ns + lag, 0, i))
    rtts: dict[int, MeasurementRecord] = {}
    own_stamp_first: set[int] = set()
    stamped: set[int] = set()
    for at_ns, kind, i in sorted(events):
        key, answer, target, left_ns = sends[i]
        if kind == 0:
            matched = matcher.match(key, T0_UNIX_NS + left_ns)
            assert matched is not None
            core.tx_stamped(*matched)
            stamped.add(i)
            continue
        if i in stamped:
            own_stamp_first.add(i)
        rx = RxTime(T0_UNIX_NS + at_ns, T0_UNIX_NS + at_ns, at_ns)
        record = core.receive(answer, (target.host, target.port), rx)
        assert isinstance(record, MeasurementRecord)
        rtts[i] = record
    for i, record in rtts.items():
        assert record.rtt_ns >= true_rtt_ns[i]
        if i in own_stamp_first:
            assert (record.rtt_ns, record.clock_source) == (true_rtt_ns[i], "kernel-tx")


def test_a_stamp_of_an_earlier_packet_is_not_taken_for_a_later_one() -> None:
    """The case that broke: REVEAL b leaves first, a's stamp (queued longer) is the newest one
    present after b's sendmsg, and lies between b's departure and b's answer."""
    core = ChallengerCore("lm-1", LANDMARK)
    responder = ResponderCore(dict(CHIPS), {"lm-1": LANDMARK.public_key()})
    matcher = TxStampMatcher(explicit_keys=True)
    targets = [
        Target("chip", c, "10.0.0.2", 7500, CHIPS[c].public_key(), "r1", 1)
        for c in ("gpu-0", "gpu-1")
    ]
    a = _send_reveal(core, responder, targets[0], 10 * MS)
    core.mark_sent(a, T0_UNIX_NS + 10 * MS, 10 * MS)
    matcher.sent(0, a.commitment)
    b = _send_reveal(core, responder, targets[1], 20 * MS)
    core.mark_sent(b, T0_UNIX_NS + 20 * MS, 20 * MS)
    matcher.sent(1, b.commitment)
    # b left at 21 ms, a (queued since 10 ms) at 23 ms; only a's stamp is back when b answers.
    matched = matcher.match(0, T0_UNIX_NS + 23 * MS)
    assert matched is not None and matched[0] == a.commitment
    core.tx_stamped(*matched)
    answer = responder.handle_datagram(b.datagram, "10.0.0.1", T0_UNIX_NS + 21 * MS)
    assert answer is not None
    record = core.receive(
        answer, ("10.0.0.2", 7500), RxTime(T0_UNIX_NS + 31 * MS, T0_UNIX_NS + 31 * MS, 31 * MS)
    )
    assert isinstance(record, MeasurementRecord)
    # True RTT 10 ms; a's stamp would have made it 8. The clock read before b's send gives 11.
    assert (record.rtt_ns, record.clock_source) == (11 * MS, "kernel")


@pytest.mark.parametrize("explicit", [False, True])
def test_loopback_send_stamps_carry_the_key_of_their_packet(explicit: bool) -> None:
    if explicit and not explicit_tx_keys_supported():
        pytest.skip("this kernel has no SCM_TS_OPT_ID (Linux >= 6.13)")
    with (
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sender,
        socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as receiver,
    ):
        sender.bind(("127.0.0.1", 0))
        receiver.bind(("127.0.0.1", 0))
        if not enable_tx_timestamps(sender):
            pytest.skip("no kernel TX timestamps on this platform")
        windows: dict[int, tuple[int, int]] = {}
        keys = [1000, 1001, 5] if explicit else [0, 1, 2]
        for key in keys:
            before_ns = time.time_ns()
            send_tx_stamped(sender, b"reveal", receiver.getsockname(), key if explicit else None)
            sender.sendto(b"unstamped", receiver.getsockname())  # takes no key
            windows[key] = (before_ns, time.time_ns())
        deadline = time.monotonic() + 5.0
        stamps: list[tuple[int, int]] = []
        while len(stamps) < len(keys) and time.monotonic() < deadline:
            stamps += read_tx_stamps(sender)
            time.sleep(0.001)
    if not stamps:
        pytest.skip("the kernel queued no TX stamps (loopback without SO_TIMESTAMPING support)")
    assert sorted(key for key, _ in stamps) == sorted(keys)
    for key, stamp_ns in stamps:
        low_ns, high_ns = windows[key]
        assert low_ns <= stamp_ns <= high_ns  # on loopback the stamp is taken inside sendmsg
