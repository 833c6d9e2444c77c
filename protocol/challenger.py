"""The challenger state machine (landmark side), sans I/O, in the aioquic style.

The I/O layer asks `challenge(target, now_unix_ns)` for a CHALLENGE datagram, takes both clocks
immediately before every `sendto` and reports them with `mark_sent`, feeds every received datagram
to `receive` with its receive timestamps (a READY gives back the REVEAL to send at once: that send
starts the clock), and calls `handle_timer` when `get_timer()` (monotonic ns) is due. A lost
challenge, READY, REVEAL or RESPONSE is retried with a whole new challenge and a FRESH nonce; a
nonce is revealed at most once, so a late answer to an earlier reveal can never be timed against a
later send.

RTT and clocks. The kernel receive timestamp (SO_TIMESTAMPNS) is CLOCK_REALTIME, so the matching
send time is `time.time_ns()`; the fallback is `time.monotonic_ns()` at both ends, the receive
side read first thing after `recvmsg` returns. The send stamp is read *before* `sendto`, which can
only lengthen the RTT (the safe direction). A wall-clock step between send and receive would corrupt
a realtime RTT, so both clock pairs are compared and any disagreement beyond slew falls back to the
monotonic RTT, which is never shorter than the true one.
"""

from __future__ import annotations

import heapq
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from protocol.errors import SignatureError, WireError
from protocol.keys import Signer
from protocol.records import MeasurementRecord, sign_record
from protocol.wire import (
    NONCE_BYTES,
    ErrorMessage,
    Hello,
    Ready,
    Response,
    Reveal,
    decode,
    nonce_commitment,
    sign_challenge,
    verify_response,
)

MAX_SLEW_PPM = 500  # Linux adjtimex caps slewing at 500 ppm
CLOCK_PAIR_TOLERANCE_NS = 20_000  # the two clocks of a pair are read a few instructions apart


@dataclass(frozen=True, slots=True)
class Target:
    target_kind: str  # "chip" | "landmark"
    target_id: str
    host: str
    port: int
    public_key: bytes  # from the target's CA-verified certificate
    round_id: str  # the round and task this measurement answers, signed into its record
    task_id: int  # the verifier's task id (records.NO_TASK_ID for config or file targets)


@dataclass(frozen=True, slots=True)
class Outgoing:
    commitment: bytes  # identifies the pending challenge
    datagram: bytes
    host: str
    port: int
    timed: bool  # True for the REVEAL, whose send stamps start the RTT


@dataclass(frozen=True, slots=True)
class RxTime:
    kernel_unix_ns: int | None  # SO_TIMESTAMPNS (CLOCK_REALTIME), None when unavailable
    unix_ns: int  # time.time_ns() right after recvmsg returned
    mono_ns: int  # time.monotonic_ns() right after recvmsg returned


@dataclass(frozen=True, slots=True)
class ChallengerConfig:
    timeout_ns: int = 500_000_000
    max_attempts: int = 3
    lifetime_ns: int = 2_000_000_000  # challenge expiry; must exceed 2 × timeout_ns


@dataclass(slots=True)
class _Pending:
    target: Target
    attempt: int
    nonce: bytes
    datagram: bytes  # the exact CHALLENGE
    expires_unix_ns: int
    deadline_mono_ns: int = 0  # of the current stage (READY awaited, then RESPONSE awaited)
    revealed: bool = False  # the REVEAL was handed out: never again for this nonce
    sent_unix_ns: int = 0  # REVEAL send stamps
    sent_mono_ns: int = 0
    tx_kernel_unix_ns: int | None = None  # the kernel's own send stamp of the REVEAL, if any
    timed: bool = False  # the REVEAL went out and its stamps are set


def choose_rtt(sent_unix_ns: int, sent_mono_ns: int, rx: RxTime,
               tx_kernel_unix_ns: int | None = None) -> tuple[int, str]:
    """(rtt_ns, clock_source): kernel stamps when the clocks agree, else the monotonic RTT.

    With a kernel send stamp too (`kernel-tx`), the RTT starts when the packet really left; the
    stamp must lie between the clock read before the send and the receive stamp, otherwise it
    is ignored."""
    mono_rtt_ns = rx.mono_ns - sent_mono_ns
    if rx.kernel_unix_ns is None:
        return mono_rtt_ns, "monotonic"
    kernel_rtt_ns = rx.kernel_unix_ns - sent_unix_ns
    tolerance_ns = CLOCK_PAIR_TOLERANCE_NS + mono_rtt_ns * MAX_SLEW_PPM // 1_000_000
    step_ns = abs((rx.unix_ns - rx.mono_ns) - (sent_unix_ns - sent_mono_ns))
    # The kernel stamps a packet before user space sees it, so kernel ≤ monotonic RTT unless the
    # wall clock stepped; a step makes realtime untrustworthy for this round trip.
    if step_ns > tolerance_ns or not 0 < kernel_rtt_ns <= mono_rtt_ns + tolerance_ns:
        return mono_rtt_ns, "monotonic"
    if tx_kernel_unix_ns is not None and sent_unix_ns <= tx_kernel_unix_ns < rx.kernel_unix_ns:
        return rx.kernel_unix_ns - tx_kernel_unix_ns, "kernel-tx"
    return kernel_rtt_ns, "kernel"


class ChallengerCore:
    def __init__(
        self,
        landmark_id: str,
        signer: Signer,
        config: ChallengerConfig = ChallengerConfig(),
        random_bytes: Callable[[int], bytes] = secrets.token_bytes,
    ) -> None:
        if config.lifetime_ns <= 2 * config.timeout_ns:
            raise ValueError("challenge lifetime must exceed twice the response timeout")
        self.landmark_id = landmark_id
        self._signer = signer
        self._config = config
        self._random_bytes = random_bytes
        self._pending: dict[bytes, _Pending] = {}  # commitment → state
        self._timers: list[tuple[int, bytes]] = []  # (deadline_mono_ns, commitment), lazy
        self._sequence = 0
        self.hello_endpoints: dict[str, tuple[str, int]] = {}  # chip id → last HELLO source
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "sent",
                "revealed",
                "measured",
                "retries",
                "gave_up",
                "hellos",
                "error_replies",
                "clock_fallbacks",
                "dropped_malformed",
                "dropped_unknown_challenge",
                "dropped_duplicate_ready",
                "dropped_bad_signature",
                "dropped_late",
                "dropped_unexpected",
            ),
            0,
        )

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def challenge(self, target: Target, now_unix_ns: int, attempt: int = 1) -> Outgoing:
        """Sign a challenge for `target` committing to a fresh nonce; send it, then `mark_sent`."""
        nonce = self._random_bytes(NONCE_BYTES)
        self._sequence += 1
        expires = now_unix_ns + self._config.lifetime_ns
        challenge = sign_challenge(
            self._signer,
            landmark_id=self.landmark_id,
            target_id=target.target_id,
            nonce=nonce,
            issued_unix_ns=now_unix_ns,
            expires_unix_ns=expires,
            sequence=self._sequence,
        )
        datagram = challenge.encode()
        self._pending[challenge.commitment] = _Pending(target, attempt, nonce, datagram, expires)
        return Outgoing(challenge.commitment, datagram, target.host, target.port, timed=False)

    def mark_sent(self, out: Outgoing, sent_unix_ns: int, sent_mono_ns: int,
                  tx_kernel_unix_ns: int | None = None) -> None:
        """Record the stamps read just before `sendto(out.datagram)` (and the kernel's send
        stamp when the transport has one) and arm the stage timer."""
        pending = self._pending.get(out.commitment)
        if pending is None:
            return
        if out.timed:
            pending.sent_unix_ns = sent_unix_ns
            pending.sent_mono_ns = sent_mono_ns
            pending.tx_kernel_unix_ns = tx_kernel_unix_ns
            pending.timed = True
            self.counters["revealed"] += 1
        else:
            self.counters["sent"] += 1
        pending.deadline_mono_ns = sent_mono_ns + self._config.timeout_ns
        heapq.heappush(self._timers, (pending.deadline_mono_ns, out.commitment))

    def tx_stamped(self, commitment: bytes, tx_kernel_unix_ns: int) -> None:
        """The kernel's send stamp of this challenge's REVEAL, when it comes after `mark_sent`
        (the transport must have matched it to that very packet). Only the first one counts."""
        pending = self._pending.get(commitment)
        if pending is not None and pending.timed and pending.tx_kernel_unix_ns is None:
            pending.tx_kernel_unix_ns = tx_kernel_unix_ns

    def _live_timer(self, deadline_mono_ns: int, commitment: bytes) -> bool:
        pending = self._pending.get(commitment)
        return pending is not None and pending.deadline_mono_ns == deadline_mono_ns

    def get_timer(self) -> int | None:
        """Monotonic ns at which `handle_timer` must next run, or None when nothing is pending."""
        heap = self._timers
        while heap and not self._live_timer(*heap[0]):
            heapq.heappop(heap)
        return heap[0][0] if heap else None

    def handle_timer(self, now_mono_ns: int, now_unix_ns: int) -> list[Outgoing]:
        """Expire overdue challenges; return retries (new challenges, fresh nonces) to send."""
        retries: list[Outgoing] = []
        heap = self._timers
        while heap and heap[0][0] <= now_mono_ns:
            deadline, commitment = heapq.heappop(heap)
            if not self._live_timer(deadline, commitment):
                continue
            pending = self._pending.pop(commitment)
            if pending.attempt >= self._config.max_attempts:
                self.counters["gave_up"] += 1
                continue
            self.counters["retries"] += 1
            retries.append(self.challenge(pending.target, now_unix_ns, pending.attempt + 1))
        return retries

    def receive(
        self, data: bytes, source: tuple[str, int], rx: RxTime
    ) -> MeasurementRecord | Outgoing | None:
        """Handle one datagram: a READY gives the REVEAL to send now, a verified RESPONSE a signed
        record, anything else None."""
        try:
            message = decode(data)
        except WireError:
            self.counters["dropped_malformed"] += 1
            return None
        if isinstance(message, Hello):
            self.counters["hellos"] += 1
            for chip_id in message.chip_ids:
                self.hello_endpoints[chip_id] = source
            return None
        if isinstance(message, ErrorMessage):
            self.counters["error_replies"] += 1
            return None
        if isinstance(message, Ready):
            return self._ready(message, rx)
        if not isinstance(message, Response):
            self.counters["dropped_unexpected"] += 1
            return None
        return self._response(message, data, rx)

    def _ready(self, ready: Ready, rx: RxTime) -> Outgoing | None:
        pending = self._pending.get(ready.commitment)
        if pending is None:
            self.counters["dropped_unknown_challenge"] += 1
            return None
        if pending.revealed:
            # READY is unsigned; a duplicate (or forgery) must never cause a second reveal.
            self.counters["dropped_duplicate_ready"] += 1
            return None
        if rx.unix_ns >= pending.expires_unix_ns:
            self.counters["dropped_late"] += 1
            return None
        pending.revealed = True
        # To the target's address, never to the READY's source: a forged READY cannot redirect
        # the nonce, at worst reveal it early (the target then ignores it and we retry).
        target = pending.target
        return Outgoing(
            ready.commitment, Reveal(pending.nonce).encode(), target.host, target.port, timed=True
        )

    def _response(self, response: Response, data: bytes, rx: RxTime) -> MeasurementRecord | None:
        commitment = nonce_commitment(response.nonce)
        pending = self._pending.get(commitment)
        if pending is None or not pending.timed:
            self.counters["dropped_unknown_challenge"] += 1
            return None
        rtt_ns, clock_source = choose_rtt(pending.sent_unix_ns, pending.sent_mono_ns, rx,
                                          pending.tx_kernel_unix_ns)
        try:
            verify_response(response, pending.datagram, pending.target.public_key)
        except (SignatureError, WireError):
            # A forged answer must not cancel the pending challenge the real target may answer.
            self.counters["dropped_bad_signature"] += 1
            return None
        del self._pending[commitment]
        if pending.sent_unix_ns + rtt_ns > pending.expires_unix_ns:
            self.counters["dropped_late"] += 1
            return None
        if clock_source == "monotonic" and rx.kernel_unix_ns is not None:
            self.counters["clock_fallbacks"] += 1
        self.counters["measured"] += 1
        return sign_record(
            self._signer,
            landmark_id=self.landmark_id,
            target_kind=pending.target.target_kind,
            target_id=pending.target.target_id,
            nonce=response.nonce,
            sent_unix_ns=pending.sent_unix_ns,
            rtt_ns=max(1, rtt_ns),
            clock_source=clock_source,
            challenge=pending.datagram,
            response=data,
            round_id=pending.target.round_id,
            task_id=pending.target.task_id,
        )
