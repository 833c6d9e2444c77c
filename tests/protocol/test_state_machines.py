"""Challenger vs responder in memory with a fake clock: no sockets, no real time."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.challenger import (
    ChallengerConfig,
    ChallengerCore,
    Outgoing,
    RxTime,
    Target,
    choose_rtt,
)
from protocol.keys import SoftwareSigner
from protocol.records import MeasurementRecord, verify_record
from protocol.responder import ResponderConfig, ResponderCore
from protocol.wire import (
    ErrorCode,
    ErrorMessage,
    Hello,
    Ready,
    Reveal,
    decode,
    sign_challenge,
)

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
    target = Target("chip", "gpu-0", "10.0.0.2", 7500, CHIP.public_key(), "r-1", 41)
    return challenger, responder, target


def ready_for(
    challenger: ChallengerCore, responder: ResponderCore, target: Target, clock: FakeClock
) -> tuple[Outgoing, bytes]:
    """Challenge sent and accepted: (the challenge, the target's READY)."""
    out = challenger.challenge(target, clock.unix_ns)
    challenger.mark_sent(out, clock.unix_ns, clock.mono_ns)
    ready = responder.handle_datagram(out.datagram, "10.0.0.1", clock.unix_ns)
    assert ready is not None and isinstance(decode(ready), Ready)
    return out, ready


def reveal_for(challenger: ChallengerCore, ready: bytes, clock: FakeClock) -> Outgoing:
    reveal = challenger.receive(ready, ("10.0.0.2", 7500), rx_at(clock))
    assert isinstance(reveal, Outgoing) and reveal.timed
    challenger.mark_sent(reveal, clock.unix_ns, clock.mono_ns)
    return reveal


def rx_at(clock: FakeClock) -> RxTime:
    return RxTime(None, clock.unix_ns, clock.mono_ns)


def test_commit_reveal_round_trip_times_only_the_reveal() -> None:
    clock = FakeClock()
    challenger, responder, target = make_pair()
    out, ready = ready_for(challenger, responder, target, clock)
    # Replies to the untimed challenge are smaller than it: no amplification.
    assert len(ready) < len(out.datagram) and not out.timed
    assert responder.counters["answered"] == 0  # nothing signed before the reveal
    clock.mono_ns += 40 * MS  # the untimed leg: signature checks, READY, anything
    reveal = reveal_for(challenger, ready, clock)
    assert (reveal.host, reveal.port) == ("10.0.0.2", 7500)
    clock.mono_ns += 3 * MS
    response = responder.handle_datagram(reveal.datagram, "10.0.0.1", clock.unix_ns)
    assert response is not None and len(response) <= len(reveal.datagram)
    clock.mono_ns += 2 * MS
    record = challenger.receive(response, ("10.0.0.2", 7500), rx_at(clock))
    assert isinstance(record, MeasurementRecord)
    assert record.rtt_ns == 5 * MS and record.clock_source == "monotonic"
    assert record.challenge == out.datagram and record.nonce not in out.datagram
    verify_record(record, LANDMARK.public_key(), CHIP.public_key())
    assert challenger.get_timer() is None and responder.counters["answered"] == 1


def test_reveal_is_answered_once_and_wrong_nonces_get_silence() -> None:
    clock = FakeClock()
    challenger, responder, target = make_pair()
    _, ready = ready_for(challenger, responder, target, clock)
    reveal = reveal_for(challenger, ready, clock)
    assert responder.handle_datagram(Reveal(b"\xff" * 32).encode(), "x", clock.unix_ns) is None
    assert responder.handle_datagram(reveal.datagram, "x", clock.unix_ns) is not None
    assert responder.handle_datagram(reveal.datagram, "x", clock.unix_ns) is None  # one-shot
    assert responder.counters["dropped_unknown_commitment"] == 2
    # A reveal that arrives before its challenge was accepted opens nothing and consumes nothing.
    early = challenger.challenge(target, clock.unix_ns)
    challenger.mark_sent(early, clock.unix_ns, clock.mono_ns)
    early_reveal = Reveal((1).to_bytes(32, "big")).encode()  # the counter's next nonce
    assert responder.handle_datagram(early_reveal, "x", clock.unix_ns) is None
    assert responder.counters["dropped_unknown_commitment"] == 3
    late_ready = responder.handle_datagram(early.datagram, "x", clock.unix_ns)
    assert late_ready is not None
    assert responder.handle_datagram(early_reveal, "x", clock.unix_ns) is not None


def test_duplicate_or_unknown_ready_never_reveals_twice() -> None:
    clock = FakeClock()
    challenger, responder, target = make_pair()
    _, ready = ready_for(challenger, responder, target, clock)
    reveal_for(challenger, ready, clock)
    assert challenger.receive(ready, ("10.0.0.2", 7500), rx_at(clock)) is None
    assert challenger.receive(Ready(bytes(32)).encode(), ("x", 1), rx_at(clock)) is None
    assert challenger.counters["dropped_duplicate_ready"] == 1
    assert challenger.counters["dropped_unknown_challenge"] == 1
    assert challenger.counters["revealed"] == 1


def test_reveal_after_expiry_is_not_answered() -> None:
    clock = FakeClock()
    challenger, responder, target = make_pair(clock_skew_ns=0)
    _, ready = ready_for(challenger, responder, target, clock)
    reveal = reveal_for(challenger, ready, clock)
    clock.mono_ns += 1001 * MS  # lifetime is 1000 ms
    assert responder.handle_datagram(reveal.datagram, "x", clock.unix_ns) is None
    assert responder.counters["dropped_reveal_expired"] == 1


def test_lost_exchanges_are_retried_with_fresh_challenges_then_given_up() -> None:
    clock = FakeClock()
    challenger, responder, target = make_pair()
    out, ready = ready_for(challenger, responder, target, clock)
    commitments = {out.commitment}
    # Attempt 1 loses its REVEAL; attempt 2 loses its READY; attempt 3 loses everything.
    reveal_for(challenger, ready, clock)
    for _ in range(2):
        deadline = challenger.get_timer()
        assert deadline == clock.mono_ns + 100 * MS
        clock.mono_ns = deadline - 1
        assert challenger.handle_timer(clock.mono_ns, clock.unix_ns) == []
        clock.mono_ns = deadline
        (retry,) = challenger.handle_timer(clock.mono_ns, clock.unix_ns)
        assert not retry.timed and retry.commitment not in commitments  # a whole new challenge
        commitments.add(retry.commitment)
        challenger.mark_sent(retry, clock.unix_ns, clock.mono_ns)
    clock.mono_ns += 100 * MS
    assert challenger.handle_timer(clock.mono_ns, clock.unix_ns) == []
    assert challenger.counters["gave_up"] == 1 and challenger.counters["retries"] == 2
    assert challenger.get_timer() is None


def test_late_answer_to_a_retried_challenge_is_not_timed() -> None:
    clock = FakeClock()
    challenger, responder, target = make_pair()
    _, ready = ready_for(challenger, responder, target, clock)
    first_reveal = reveal_for(challenger, ready, clock)
    clock.mono_ns += 100 * MS
    (retry,) = challenger.handle_timer(clock.mono_ns, clock.unix_ns)
    challenger.mark_sent(retry, clock.unix_ns, clock.mono_ns)
    late = responder.handle_datagram(first_reveal.datagram, "x", clock.unix_ns)
    assert late is not None
    clock.mono_ns += MS
    assert challenger.receive(late, ("x", 1), rx_at(clock)) is None
    assert challenger.counters["dropped_unknown_challenge"] == 1


def test_forged_answer_does_not_cancel_the_pending_challenge() -> None:
    clock = FakeClock()
    challenger, responder, target = make_pair()
    out, ready = ready_for(challenger, responder, target, clock)
    impostor = ResponderCore({"gpu-0": ROGUE}, {"lm-1": LANDMARK.public_key()})
    assert impostor.handle_datagram(out.datagram, "y", clock.unix_ns) is not None
    reveal = reveal_for(challenger, ready, clock)
    forged = impostor.handle_datagram(reveal.datagram, "y", clock.unix_ns)
    assert forged is not None
    clock.mono_ns += MS
    assert challenger.receive(forged, ("x", 1), rx_at(clock)) is None
    assert challenger.counters["dropped_bad_signature"] == 1
    answer = responder.handle_datagram(reveal.datagram, "x", clock.unix_ns)
    assert answer is not None
    assert isinstance(challenger.receive(answer, ("x", 1), rx_at(clock)), MeasurementRecord)


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
        Target("chip", "gpu-7", "h", 1, CHIP.public_key(), "r-1", 42), clock.unix_ns
    ).datagram
    error = decode(responder.handle_datagram(wrong_chip, "x", clock.unix_ns) or b"")
    assert isinstance(error, ErrorMessage) and error.code == ErrorCode.UNKNOWN_TARGET
    expired = challenger.challenge(target, clock.unix_ns - 10_000 * MS).datagram
    error = decode(responder.handle_datagram(expired, "x", clock.unix_ns) or b"")
    assert isinstance(error, ErrorMessage) and error.code == ErrorCode.EXPIRED
    assert responder.handle_datagram(b"junk", "x", clock.unix_ns) is None
    assert responder.handle_datagram(b"\0" * 5000, "x", clock.unix_ns) is None
    assert responder.handle_datagram(Hello(1, ("a",)).encode(), "x", clock.unix_ns) is None
    bad_padding = Reveal(b"n" * 32).encode()[:-1] + b"\x01"
    assert responder.handle_datagram(bad_padding, "x", clock.unix_ns) is None
    counts = {k: v for k, v in responder.counters.items() if v}
    assert counts == {
        "received": 10,
        "ready_sent": 1,
        "errors_sent": 2,
        "dropped_replay": 1,
        "dropped_bad_signature": 1,
        "dropped_unknown_landmark": 1,
        "dropped_unknown_target": 1,
        "dropped_expired": 1,
        "dropped_malformed": 2,
        "dropped_oversized": 1,
        "dropped_unexpected_type": 1,
    }


def test_rate_limit_per_source_and_refill() -> None:
    clock = FakeClock()
    _, responder, _ = make_pair(rate_per_s=10.0, burst=2.0)
    for _ in range(2):
        responder.handle_datagram(b"junk", "a", clock.unix_ns)
    responder.handle_datagram(Reveal(bytes(32)).encode(), "a", clock.unix_ns)  # reveals count
    responder.handle_datagram(b"junk", "b", clock.unix_ns)  # another source has its own bucket
    assert responder.counters["dropped_rate_limited"] == 1
    clock.mono_ns += 100 * MS  # one token back
    responder.handle_datagram(b"junk", "a", clock.unix_ns)
    assert responder.counters["dropped_rate_limited"] == 1
    assert responder.counters["dropped_malformed"] == 4


@pytest.mark.parametrize("limit", ["replay_cache_size", "max_pending"])
def test_full_caches_refuse_instead_of_forgetting(limit: str) -> None:
    clock = FakeClock()
    challenger, responder, target = make_pair(**{limit: 2})
    outs = [challenger.challenge(target, clock.unix_ns) for _ in range(3)]
    accepted = [responder.handle_datagram(o.datagram, "x", clock.unix_ns) for o in outs]
    assert [a is not None for a in accepted] == [True, True, False]
    reason = "replay_cache_full" if limit == "replay_cache_size" else "pending_full"
    assert responder.counters[f"dropped_{reason}"] == 1
    clock.mono_ns += 7_000 * MS  # past expiry + skew: entries are purged, space returns
    fresh = challenger.challenge(target, clock.unix_ns)
    assert responder.handle_datagram(fresh.datagram, "x", clock.unix_ns) is not None


@given(st.lists(st.sampled_from(["ready", "reveal", "response", "nothing"]), max_size=12))
def test_any_loss_pattern_gives_only_valid_records(drops: list[str]) -> None:
    """Whatever is lost (and however retries interleave), every record verifies and its RTT is
    measured from the send of the reveal that its response answers."""
    clock = FakeClock()
    challenger, responder, target = make_pair()
    dropped = iter(drops)
    out = challenger.challenge(target, clock.unix_ns)
    challenger.mark_sent(out, clock.unix_ns, clock.mono_ns)
    records: list[MeasurementRecord] = []
    for _ in range(8):
        what = next(dropped, None)
        ready = responder.handle_datagram(out.datagram, "x", clock.unix_ns)
        if ready is not None and what != "ready":
            reveal = challenger.receive(ready, ("x", 1), rx_at(clock))
            if isinstance(reveal, Outgoing):
                challenger.mark_sent(reveal, clock.unix_ns, clock.mono_ns)
                clock.mono_ns += MS
                answer = None
                if what != "reveal":
                    answer = responder.handle_datagram(reveal.datagram, "x", clock.unix_ns)
                if answer is not None and what != "response":
                    result = challenger.receive(answer, ("x", 1), rx_at(clock))
                    assert isinstance(result, MeasurementRecord)
                    assert result.rtt_ns == MS
                    verify_record(result, LANDMARK.public_key(), CHIP.public_key())
                    records.append(result)
                    break
        clock.mono_ns += 100 * MS
        retries = challenger.handle_timer(clock.mono_ns, clock.unix_ns)
        if not retries:
            break
        (out,) = retries
        challenger.mark_sent(out, clock.unix_ns, clock.mono_ns)
    assert len(records) <= 1
    assert challenger.counters["measured"] == len(records)


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


@pytest.mark.parametrize(
    ("tx_ns", "expected"),
    [
        (T0_UNIX_NS + 5_000, (35_000, "kernel-tx")),  # the packet left 5 µs after the clock read
        (T0_UNIX_NS - 1, (40_000, "kernel")),  # a send stamp before the read is impossible
        (T0_UNIX_NS + 40_000, (40_000, "kernel")),  # ... and so is one at the receive time
        (None, (40_000, "kernel")),
    ],
)
def test_choose_rtt_with_kernel_send_stamp(tx_ns: int | None, expected: tuple[int, str]) -> None:
    rx = RxTime(T0_UNIX_NS + 40_000, T0_UNIX_NS + 50_000, 50_000)
    assert choose_rtt(T0_UNIX_NS, 0, rx, tx_ns) == expected


@given(st.integers(1, 10**9), st.integers(0, 10**8), st.integers(0, 10**8))
def test_kernel_send_stamp_measures_exactly_the_wire_round_trip(
    true_rtt_ns: int, send_delay_ns: int, user_delay_ns: int
) -> None:
    """However long the GIL or the scheduler holds the send after the clock read, the RTT from
    the kernel's send stamp is the wire round trip: never shorter, and no longer."""
    left_ns = T0_UNIX_NS + send_delay_ns
    rx = RxTime(
        kernel_unix_ns=left_ns + true_rtt_ns,
        unix_ns=left_ns + true_rtt_ns + user_delay_ns,
        mono_ns=send_delay_ns + true_rtt_ns + user_delay_ns,
    )
    assert choose_rtt(T0_UNIX_NS, 0, rx, left_ns) == (true_rtt_ns, "kernel-tx")
