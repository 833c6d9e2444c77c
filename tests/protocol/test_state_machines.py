"""Challenger vs responder in memory with a fake clock: no sockets, no real time."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.challenger import ChallengerConfig, ChallengerCore, RxTime, Target, choose_rtt
from protocol.keys import SoftwareSigner
from protocol.records import verify_record
from protocol.responder import ResponderConfig, ResponderCore
from protocol.wire import ErrorCode, ErrorMessage, Hello, decode, sign_challenge

LANDMARK = SoftwareSigner(bytes(range(32)))
ROGUE = SoftwareSigner(bytes(range(128, 160)))
CHIP = SoftwareSigner(bytes(range(32, 64)))
T0_UNIX_NS = 1_700_000_000_000_000_000
MS = 1_000_000


class FakeClock:
    def __init__(self) -> None:
        self.mono_ns = 10 * MS

    @property
    def unix_ns(self) -> int:
        return T0_UNIX_NS + self.mono_ns


def counter_nonces() -> object:
    counter = itertools.count()
    return lambda size: next(counter).to_bytes(size, "big")


def make_pair(**responder_overrides: object) -> tuple[ChallengerCore, ResponderCore, Target]:
    challenger = ChallengerCore(
        "lm-1",
        LANDMARK,
        ChallengerConfig(timeout_ns=100 * MS, max_attempts=3, lifetime_ns=1000 * MS),
        random_bytes=counter_nonces(),  # type: ignore[arg-type]
    )
    responder = ResponderCore(
        {"gpu-0": CHIP},
        {"lm-1": LANDMARK.public_key()},
        ResponderConfig(**responder_overrides),  # type: ignore[arg-type]
    )
    target = Target("chip", "gpu-0", "10.0.0.2", 7500, CHIP.public_key())
    return challenger, responder, target


def test_round_trip_with_fake_clock_gives_exact_rtt() -> None:
    clock = FakeClock()
    challenger, responder, target = make_pair()
    out = challenger.challenge(target, clock.unix_ns)
    challenger.mark_sent(out.nonce, clock.unix_ns, clock.mono_ns)
    clock.mono_ns += 3 * MS
    reply = responder.handle_datagram(out.datagram, "10.0.0.1", clock.unix_ns)
    assert reply is not None and len(reply) < len(out.datagram)
    clock.mono_ns += 2 * MS
    record = challenger.receive(
        reply, ("10.0.0.2", 7500), RxTime(None, clock.unix_ns, clock.mono_ns)
    )
    assert record is not None
    assert record.rtt_ns == 5 * MS and record.clock_source == "monotonic"
    verify_record(record, LANDMARK.public_key(), CHIP.public_key())
    assert challenger.get_timer() is None and responder.counters["answered"] == 1


def test_lost_challenges_are_retried_with_fresh_nonces_then_given_up() -> None:
    clock = FakeClock()
    challenger, _, target = make_pair()
    out = challenger.challenge(target, clock.unix_ns)
    challenger.mark_sent(out.nonce, clock.unix_ns, clock.mono_ns)
    nonces = {out.nonce}
    for _ in range(2):
        deadline = challenger.get_timer()
        assert deadline == clock.mono_ns + 100 * MS
        clock.mono_ns = deadline - 1
        assert challenger.handle_timer(clock.mono_ns, clock.unix_ns) == []
        clock.mono_ns = deadline
        (retry,) = challenger.handle_timer(clock.mono_ns, clock.unix_ns)
        assert retry.nonce not in nonces
        nonces.add(retry.nonce)
        challenger.mark_sent(retry.nonce, clock.unix_ns, clock.mono_ns)
    clock.mono_ns += 100 * MS
    assert challenger.handle_timer(clock.mono_ns, clock.unix_ns) == []
    assert challenger.counters["gave_up"] == 1 and challenger.counters["retries"] == 2
    assert challenger.get_timer() is None


def test_late_answer_to_a_retried_nonce_is_not_timed() -> None:
    clock = FakeClock()
    challenger, responder, target = make_pair()
    first = challenger.challenge(target, clock.unix_ns)
    challenger.mark_sent(first.nonce, clock.unix_ns, clock.mono_ns)
    clock.mono_ns += 100 * MS
    (retry,) = challenger.handle_timer(clock.mono_ns, clock.unix_ns)
    challenger.mark_sent(retry.nonce, clock.unix_ns, clock.mono_ns)
    late = responder.handle_datagram(first.datagram, "x", clock.unix_ns)
    assert late is not None
    rx = RxTime(None, clock.unix_ns + MS, clock.mono_ns + MS)
    assert challenger.receive(late, ("x", 1), rx) is None
    assert challenger.counters["dropped_unknown_nonce"] == 1


def test_forged_answer_does_not_cancel_the_pending_challenge() -> None:
    clock = FakeClock()
    challenger, _, target = make_pair()
    out = challenger.challenge(target, clock.unix_ns)
    challenger.mark_sent(out.nonce, clock.unix_ns, clock.mono_ns)
    impostor = ResponderCore({"gpu-0": ROGUE}, {"lm-1": LANDMARK.public_key()})
    forged = impostor.handle_datagram(out.datagram, "x", clock.unix_ns)
    assert forged is not None
    rx = RxTime(None, clock.unix_ns + MS, clock.mono_ns + MS)
    assert challenger.receive(forged, ("x", 1), rx) is None
    assert challenger.counters["dropped_bad_signature"] == 1
    genuine = ResponderCore({"gpu-0": CHIP}, {"lm-1": LANDMARK.public_key()})
    answer = genuine.handle_datagram(out.datagram, "x", clock.unix_ns)
    assert answer is not None and challenger.receive(answer, ("x", 1), rx) is not None


def test_responder_rejections_are_counted() -> None:
    clock = FakeClock()
    challenger, responder, target = make_pair()
    out = challenger.challenge(target, clock.unix_ns)
    assert responder.handle_datagram(out.datagram, "x", clock.unix_ns) is not None
    assert responder.handle_datagram(out.datagram, "x", clock.unix_ns) is None  # replay
    rogue = sign_challenge(
        ROGUE,
        landmark_id="lm-1",
        target_id="gpu-0",
        nonce=b"r" * 32,
        issued_unix_ns=clock.unix_ns,
        expires_unix_ns=clock.unix_ns + MS,
        sequence=1,
    ).encode()
    assert responder.handle_datagram(rogue, "x", clock.unix_ns) is None
    unknown_lm = sign_challenge(
        ROGUE,
        landmark_id="lm-9",
        target_id="gpu-0",
        nonce=b"u" * 32,
        issued_unix_ns=clock.unix_ns,
        expires_unix_ns=clock.unix_ns + MS,
        sequence=1,
    ).encode()
    assert responder.handle_datagram(unknown_lm, "x", clock.unix_ns) is None
    wrong_chip = challenger.challenge(
        Target("chip", "gpu-7", "h", 1, CHIP.public_key()), clock.unix_ns
    ).datagram
    error = decode(responder.handle_datagram(wrong_chip, "x", clock.unix_ns) or b"")
    assert isinstance(error, ErrorMessage) and error.code == ErrorCode.UNKNOWN_TARGET
    expired = challenger.challenge(target, clock.unix_ns - 10_000 * MS).datagram
    error = decode(responder.handle_datagram(expired, "x", clock.unix_ns) or b"")
    assert isinstance(error, ErrorMessage) and error.code == ErrorCode.EXPIRED
    assert responder.handle_datagram(b"junk", "x", clock.unix_ns) is None
    assert responder.handle_datagram(b"\0" * 5000, "x", clock.unix_ns) is None
    assert responder.handle_datagram(Hello(1, ("a",)).encode(), "x", clock.unix_ns) is None
    counts = {k: v for k, v in responder.counters.items() if v}
    assert counts == {
        "received": 9,
        "answered": 1,
        "errors_sent": 2,
        "dropped_replay": 1,
        "dropped_bad_signature": 1,
        "dropped_unknown_landmark": 1,
        "dropped_unknown_target": 1,
        "dropped_expired": 1,
        "dropped_malformed": 1,
        "dropped_oversized": 1,
        "dropped_not_challenge": 1,
    }


def test_rate_limit_per_source_and_refill() -> None:
    clock = FakeClock()
    _, responder, _ = make_pair(rate_per_s=10.0, burst=2.0)
    for _ in range(2):
        responder.handle_datagram(b"junk", "a", clock.unix_ns)
    responder.handle_datagram(b"junk", "a", clock.unix_ns)
    responder.handle_datagram(b"junk", "b", clock.unix_ns)  # another source has its own bucket
    assert responder.counters["dropped_rate_limited"] == 1
    clock.mono_ns += 100 * MS  # one token back
    responder.handle_datagram(b"junk", "a", clock.unix_ns)
    assert responder.counters["dropped_rate_limited"] == 1
    assert responder.counters["dropped_malformed"] == 4


def test_full_replay_cache_refuses_instead_of_forgetting() -> None:
    clock = FakeClock()
    challenger, responder, target = make_pair(replay_cache_size=2)
    outs = [challenger.challenge(target, clock.unix_ns) for _ in range(3)]
    assert [
        responder.handle_datagram(o.datagram, "x", clock.unix_ns) is not None for o in outs
    ] == [
        True,
        True,
        False,
    ]
    assert responder.counters["dropped_replay_cache_full"] == 1
    clock.mono_ns += 7_000 * MS  # past expiry + skew: entries are purged, space returns
    fresh = challenger.challenge(target, clock.unix_ns)
    assert responder.handle_datagram(fresh.datagram, "x", clock.unix_ns) is not None


def test_hello_records_endpoint() -> None:
    challenger, _, _ = make_pair()
    rx = RxTime(None, 0, 0)
    assert challenger.receive(Hello(1, ("gpu-0",)).encode(), ("192.0.2.1", 4000), rx) is None
    assert challenger.hello_endpoints == {"gpu-0": ("192.0.2.1", 4000)}


@pytest.mark.parametrize(
    ("rx", "expected"),
    [
        (RxTime(T0_UNIX_NS + 40_000, T0_UNIX_NS + 50_000, 50_000), (40_000, "kernel")),
        # wall clock stepped back 1 s during the round trip: fall back to monotonic
        (
            RxTime(T0_UNIX_NS - 10**9 + 40_000, T0_UNIX_NS - 10**9 + 50_000, 50_000),
            (50_000, "monotonic"),
        ),
        # wall clock stepped forward: the kernel RTT would exceed the monotonic one
        (RxTime(T0_UNIX_NS + 10**9, T0_UNIX_NS + 10**9 + 50_000, 50_000), (50_000, "monotonic")),
        (RxTime(None, T0_UNIX_NS + 50_000, 50_000), (50_000, "monotonic")),
    ],
)
def test_choose_rtt(rx: RxTime, expected: tuple[int, str]) -> None:
    assert choose_rtt(T0_UNIX_NS, 0, rx) == expected


@given(st.integers(0, 10**9), st.integers(0, 10**9), st.integers(-(10**10), 10**10))
def test_chosen_rtt_never_below_true_rtt_minus_slew(
    true_rtt_ns: int, user_delay_ns: int, step_ns: int
) -> None:
    """Soundness: whatever the wall clock does, the RTT is ≥ the true RTT (kernel stamp) minus
    what slewing can legally remove, never an arbitrary amount less."""
    rx = RxTime(
        kernel_unix_ns=T0_UNIX_NS + true_rtt_ns + step_ns,
        unix_ns=T0_UNIX_NS + true_rtt_ns + user_delay_ns + step_ns,
        mono_ns=true_rtt_ns + user_delay_ns,
    )
    rtt_ns, _ = choose_rtt(T0_UNIX_NS, 0, rx)
    mono_rtt = true_rtt_ns + user_delay_ns
    assert rtt_ns >= true_rtt_ns - 20_000 - mono_rtt * 500 // 1_000_000
