"""Pairing the kernel's send stamps with the packets that asked for them (sans-I/O).

The kernel queues each TX stamp on the socket's error queue with the packet's
SOF_TIMESTAMPING_OPT_ID key in the extended error (`ee_data`). A stamp may come late (a real NIC
stamps when the driver takes the packet, after any qdisc queueing) and stamps may arrive out of
order, so "the newest stamp after sendmsg" can be an earlier packet's: taken for a later REVEAL,
a stamp later than that REVEAL's clock read would shorten its RTT. Here a stamp counts only for
the send whose key it carries; any other stamp is dropped and the RTT falls back to the clock read
just before that send's `sendmsg` (never later than the packet left, so never too short).

Keys: with SCM_TS_OPT_ID (Linux >= 6.13) each send names its own key. Older kernels number the
socket's stamped sends 0, 1, 2 ... themselves; a send that fails may or may not have used a number,
so after one the numbering is no longer known and stamps are given up for that socket.
"""

from __future__ import annotations

import collections
import logging

logger = logging.getLogger(__name__)

KEY_MODULUS = 1 << 32  # ee_data and the kernel's sk_tskey are 32-bit and wrap
MAX_OUTSTANDING = 4096  # sends awaiting a stamp; older ones are forgotten (their stamp ignored)


class TxStampMatcher:
    """Hands out OPT_ID keys to stamped sends and maps each returned stamp to its own send."""

    def __init__(self, *, explicit_keys: bool, max_outstanding: int = MAX_OUTSTANDING) -> None:
        self.explicit_keys = explicit_keys
        self._max_outstanding = max_outstanding
        self._next_key = 0
        self._outstanding: collections.OrderedDict[int, bytes] = collections.OrderedDict()
        self.enabled = True
        self.counters = {"tx_matched": 0, "tx_unmatched": 0, "tx_send_failures": 0}

    def next_key(self) -> int | None:
        """The key for the next stamped send, or None: send it without asking for a stamp."""
        return self._next_key if self.enabled else None

    def sent(self, key: int, commitment: bytes) -> None:
        """The stamped send with `key` (from `next_key`) of the REVEAL `commitment` succeeded."""
        self._outstanding[key] = commitment
        self._outstanding.move_to_end(key)
        while len(self._outstanding) > self._max_outstanding:
            self._outstanding.popitem(last=False)
        self._next_key = (key + 1) % KEY_MODULUS

    def send_failed(self) -> None:
        """The stamped send with the current `next_key` raised."""
        self.counters["tx_send_failures"] += 1
        if self.explicit_keys:
            self._next_key = (self._next_key + 1) % KEY_MODULUS  # never reuse a key we named
            return
        # The kernel may or may not have consumed a number: later stamps could be off by one.
        self.enabled = False
        logger.warning("kernel send stamps off for this socket after a failed send: without "
                       "SCM_TS_OPT_ID their numbering is no longer known")

    def match(self, key: int, stamp_unix_ns: int) -> tuple[bytes, int] | None:
        """(commitment, stamp) when `key` belongs to a send still awaiting its stamp, else None."""
        commitment = self._outstanding.pop(key, None)
        if commitment is None:
            self.counters["tx_unmatched"] += 1
            return None
        self.counters["tx_matched"] += 1
        return commitment, stamp_unix_ns
