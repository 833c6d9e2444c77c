"""The responder state machine (agent side, and landmarks answering mesh probes), sans I/O.

`handle_datagram(data, source_host, now_unix_ns)` returns the bytes to send back, or None. It never
raises on input: every dropped datagram increments exactly one counter naming the reason.

Commit-reveal (see `protocol.wire`): a CHALLENGE is checked cheapest first (size, rate limit,
parse, known landmark, lifetime, replay, then the landmark signature, then addressing and time
window), stored as pending with the digest of its exact bytes, and acknowledged with READY. The
timed REVEAL then costs a fixed-size header compare, one SHA-256 of the nonce, a dictionary lookup
and the chip's signature: the landmark signature check is off the timed path, yet nothing is ever
signed for a challenge that a known landmark did not sign.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass

from protocol.errors import SignatureError, WireError
from protocol.keys import Signer
from protocol.wire import (
    MAX_DATAGRAM_BYTES,
    NONCE_BYTES,
    RESPONSE_DOMAIN,
    RESPONSE_HEADER,
    REVEAL_BYTES,
    REVEAL_HEADER,
    Challenge,
    ErrorCode,
    ErrorMessage,
    Ready,
    challenge_digest,
    decode,
    nonce_commitment,
)

DROP_REASONS = (
    "oversized",
    "malformed",
    "unexpected_type",
    "rate_limited",
    "unknown_landmark",
    "bad_signature",
    "unknown_target",
    "expired",
    "not_yet_valid",
    "lifetime_too_long",
    "replay",
    "replay_cache_full",
    "pending_full",
    "unknown_commitment",
    "reveal_expired",
)
_REVEAL_PADDING = bytes(REVEAL_BYTES - 4 - NONCE_BYTES)


@dataclass(frozen=True, slots=True)
class ResponderConfig:
    clock_skew_ns: int = 5_000_000_000  # tolerated wall-clock disagreement with landmarks
    max_lifetime_ns: int = 60_000_000_000  # longer-lived challenges would bloat the replay cache
    replay_cache_size: int = 200_000
    max_pending: int = 65_536  # verified challenges waiting for their REVEAL
    rate_per_s: float = 10_000.0  # per source host
    burst: float = 2_000.0
    max_sources: int = 4_096


@dataclass(frozen=True, slots=True)
class _Pending:
    signer: Signer
    digest: bytes  # SHA-256 of the exact CHALLENGE datagram, computed before the reveal
    expires_unix_ns: int


class _TokenBucket:
    __slots__ = ("tokens", "updated_unix_ns")

    def __init__(self, tokens: float, now_unix_ns: int) -> None:
        self.tokens = tokens
        self.updated_unix_ns = now_unix_ns


class ResponderCore:
    """Answers challenges for `identities` (id → Signer) signed by `landmark_keys` (id → key)."""

    def __init__(
        self,
        identities: Mapping[str, Signer],
        landmark_keys: Mapping[str, bytes],
        config: ResponderConfig = ResponderConfig(),
    ) -> None:
        self._identities = dict(identities)
        self._landmark_keys = dict(landmark_keys)
        self._config = config
        # Both keyed by commitment. A commitment enters the replay cache when its challenge is
        # accepted and stays until expiry, so a challenge is answered at most once.
        self._replay: OrderedDict[bytes, int] = OrderedDict()  # → expires_unix_ns
        self._pending: OrderedDict[bytes, _Pending] = OrderedDict()
        self._buckets: OrderedDict[str, _TokenBucket] = OrderedDict()
        # Every key exists from the start so another thread may copy the dict at any time.
        self.counters: dict[str, int] = dict.fromkeys(
            (
                "received", "ready_sent", "answered", "errors_sent",
                *(f"dropped_{r}" for r in DROP_REASONS),
            ),
            0,
        )

    @property
    def identity_ids(self) -> tuple[str, ...]:
        return tuple(self._identities)

    def _drop(self, reason: str) -> None:
        self.counters[f"dropped_{reason}"] += 1

    def _allow(self, source_host: str, now_unix_ns: int) -> bool:
        bucket = self._buckets.get(source_host)
        if bucket is None:
            if len(self._buckets) >= self._config.max_sources:
                self._buckets.popitem(last=False)
            bucket = self._buckets[source_host] = _TokenBucket(self._config.burst, now_unix_ns)
        else:
            self._buckets.move_to_end(source_host)
        # A wall clock stepping back must not mint tokens, hence max(0, ...).
        elapsed_s = max(0, now_unix_ns - bucket.updated_unix_ns) / 1e9
        bucket.tokens = min(self._config.burst, bucket.tokens + elapsed_s * self._config.rate_per_s)
        bucket.updated_unix_ns = now_unix_ns
        if bucket.tokens < 1.0:
            return False
        bucket.tokens -= 1.0
        return True

    def _purge(self, now_unix_ns: int) -> None:
        # Insertion order is close to expiry order (landmarks use similar lifetimes); an entry
        # stuck behind a longer-lived one only stays a little longer, still within the bounds.
        horizon = now_unix_ns - self._config.clock_skew_ns
        replay, pending = self._replay, self._pending
        while replay and next(iter(replay.values())) < horizon:
            replay.popitem(last=False)
        while pending and next(iter(pending.values())).expires_unix_ns < horizon:
            pending.popitem(last=False)

    def handle_datagram(self, data: bytes, source_host: str, now_unix_ns: int) -> bytes | None:
        self.counters["received"] += 1
        # The timed REVEAL has a fixed size and header: recognise it without the generic decoder.
        if len(data) == REVEAL_BYTES and data[:4] == REVEAL_HEADER:
            if not self._allow(source_host, now_unix_ns):
                self._drop("rate_limited")
                return None
            return self._reveal(data, now_unix_ns)
        if len(data) > MAX_DATAGRAM_BYTES:
            self._drop("oversized")
            return None
        if not self._allow(source_host, now_unix_ns):
            self._drop("rate_limited")
            return None
        try:
            message = decode(data)
        except WireError:
            self._drop("malformed")
            return None
        if not isinstance(message, Challenge):
            self._drop("unexpected_type")
            return None
        return self._accept(message, data, now_unix_ns)

    def _reveal(self, data: bytes, now_unix_ns: int) -> bytes | None:
        nonce = data[4 : 4 + NONCE_BYTES]
        if data[4 + NONCE_BYTES :] != _REVEAL_PADDING:
            self._drop("malformed")
            return None
        # Popping makes the answer one-shot: a second REVEAL of the same nonce gets silence.
        pending = self._pending.pop(nonce_commitment(nonce), None)
        if pending is None:
            self._drop("unknown_commitment")
            return None
        if now_unix_ns > pending.expires_unix_ns + self._config.clock_skew_ns:
            self._drop("reveal_expired")
            return None
        self.counters["answered"] += 1
        signature = pending.signer.sign(RESPONSE_DOMAIN + pending.digest + nonce)
        return RESPONSE_HEADER + nonce + signature

    def _accept(self, challenge: Challenge, data: bytes, now_unix_ns: int) -> bytes | None:
        landmark_key = self._landmark_keys.get(challenge.landmark_id)
        if landmark_key is None:
            self._drop("unknown_landmark")
            return None
        skew = self._config.clock_skew_ns
        if challenge.expires_unix_ns - challenge.issued_unix_ns > self._config.max_lifetime_ns:
            self._drop("lifetime_too_long")
            return None
        if challenge.commitment in self._replay:
            self._drop("replay")
            return None
        try:
            challenge.verify(landmark_key)
        except SignatureError:
            self._drop("bad_signature")
            return None
        # Only a correctly signed challenge earns a reply (READY 36 B, ERROR 37 B < any challenge).
        error: ErrorCode | None = None
        signer = self._identities.get(challenge.target_id)
        if signer is None:
            self._drop("unknown_target")
            error = ErrorCode.UNKNOWN_TARGET
        elif now_unix_ns > challenge.expires_unix_ns + skew:
            self._drop("expired")
            error = ErrorCode.EXPIRED
        elif now_unix_ns < challenge.issued_unix_ns - skew:
            self._drop("not_yet_valid")
            error = ErrorCode.EXPIRED
        if error is not None:
            self.counters["errors_sent"] += 1
            return ErrorMessage(error, challenge.commitment).encode()
        assert signer is not None
        self._purge(now_unix_ns)
        if len(self._replay) >= self._config.replay_cache_size:
            # Evicting an unexpired entry would re-open it to replay; refusing is the safe side.
            self._drop("replay_cache_full")
            return None
        if len(self._pending) >= self._config.max_pending:
            self._drop("pending_full")
            return None
        self._replay[challenge.commitment] = challenge.expires_unix_ns
        self._pending[challenge.commitment] = _Pending(
            signer, challenge_digest(data), challenge.expires_unix_ns
        )
        self.counters["ready_sent"] += 1
        return Ready(challenge.commitment).encode()
