"""The landmark's timed path: one thread owning the challenge socket.

Challenges (signed, untimed) go out paced at `max_rate_per_s`; when a target's READY arrives the
REVEAL goes out at once. The clocks are read immediately before each `sendto` (the REVEAL's stamps
start the RTT) and the receive time comes from the kernel (SO_TIMESTAMPNS), so neither the asyncio
scheduler, nor signature checks, nor other packets queued ahead of a response enter its RTT.
Verified records leave through `on_record` (a queue put), so no disk or network I/O ever runs
on this thread.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import queue
import select
import threading
import time
from collections.abc import Callable, Iterable

from protocol.challenger import ChallengerCore, Outgoing, RxTime, Target
from protocol.records import MeasurementRecord
from protocol.wire import MAX_DATAGRAM_BYTES
from udp_io.timestamps import (
    ANCILLARY_BYTES,
    enable_kernel_timestamps,
    enable_tx_timestamps,
    explicit_tx_keys_supported,
    kernel_timestamp_ns,
    open_udp_socket,
    read_tx_stamps,
    send_tx_stamped,
)
from udp_io.txstamps import TxStampMatcher

logger = logging.getLogger(__name__)
IDLE_WAIT_S = 0.5


class Prober:
    def __init__(
        self,
        core: ChallengerCore,
        host: str,
        port: int,
        on_record: Callable[[MeasurementRecord], None],
        *,
        max_rate_per_s: float = 5_000.0,
        kernel_timestamps: bool = True,
    ) -> None:
        self.core = core
        self._on_record = on_record
        self._sock = open_udp_socket(host, port)
        self._sock.setblocking(False)
        self.address: tuple[str, int] = self._sock.getsockname()[:2]
        self.kernel_timestamps = kernel_timestamps and enable_kernel_timestamps(self._sock)
        self.tx_timestamps = self.kernel_timestamps and enable_tx_timestamps(self._sock)
        self._tx = TxStampMatcher(explicit_keys=self.tx_timestamps and explicit_tx_keys_supported())
        self._interval_ns = int(1e9 / max_rate_per_s)
        self._inbox: queue.SimpleQueue[Target] = queue.SimpleQueue()
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="prober", daemon=True)
        self.socket_errors = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        os.write(self._wake_w, b"x")
        self._thread.join(timeout=5)
        self._sock.close()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def submit(self, targets: Iterable[Target]) -> None:
        """Queue targets to challenge (thread-safe); they go out paced at max_rate_per_s.
        Ignored once stopping (a spaced-out probe may be due after shutdown began)."""
        if self._stopping.is_set():
            return
        for target in targets:
            self._inbox.put(target)
        os.write(self._wake_w, b"x")

    def counters(self) -> dict[str, int]:
        snapshot = dict(self.core.counters)
        snapshot["socket_errors"] = self.socket_errors
        snapshot["pending"] = self.core.pending_count
        if self.tx_timestamps:
            snapshot.update(self._tx.counters)
        return snapshot

    def _send(self, out: Outgoing) -> None:
        time_ns, mono_ns = time.time_ns, time.monotonic_ns
        key = self._tx.next_key() if out.timed and self.tx_timestamps else None
        stamped = False
        try:
            sent_unix_ns = time_ns()
            sent_mono_ns = mono_ns()
            if key is None:
                self._sock.sendto(out.datagram, (out.host, out.port))
            else:
                explicit_key = key if self._tx.explicit_keys else None
                send_tx_stamped(self._sock, out.datagram, (out.host, out.port), explicit_key)
                stamped = True
        except OSError as exc:
            self.socket_errors += 1
            if key is not None:
                self._tx.send_failed()
            logger.debug("sendto %s:%d failed: %s", out.host, out.port, exc)
            # Still marked sent: the timer retries it like a lost datagram.
        self.core.mark_sent(out, sent_unix_ns, sent_mono_ns)
        if stamped and key is not None:
            self._tx.sent(key, out.commitment)
            self._collect_tx_stamps()

    def _collect_tx_stamps(self) -> None:
        """Give each send stamp in the error queue to its own REVEAL (by OPT_ID key), if any."""
        for key, stamp_unix_ns in read_tx_stamps(self._sock):
            matched = self._tx.match(key, stamp_unix_ns)
            if matched is not None:
                self.core.tx_stamped(*matched)

    def _receive_all(self) -> None:
        recvmsg, time_ns, mono_ns = self._sock.recvmsg, time.time_ns, time.monotonic_ns
        if self.tx_timestamps:
            self._collect_tx_stamps()  # a late send stamp still counts if it beat the answer
        while True:
            try:
                data, ancdata, _flags, source = recvmsg(MAX_DATAGRAM_BYTES + 1, ANCILLARY_BYTES)
            except BlockingIOError:
                if self.tx_timestamps:
                    self._collect_tx_stamps()  # a pending stamp keeps select() waking
                return
            except OSError:
                self.socket_errors += 1
                return
            rx = RxTime(kernel_timestamp_ns(ancdata), time_ns(), mono_ns())
            result = self.core.receive(data, source[:2], rx)
            if isinstance(result, Outgoing):
                self._send(result)  # the REVEAL: not paced, its send starts the clock
            elif result is not None:
                self._on_record(result)

    def _run(self) -> None:
        backlog: collections.deque[Target] = collections.deque()
        retries: collections.deque[Outgoing] = collections.deque()
        next_slot_ns = time.monotonic_ns()
        sock_fd = self._sock.fileno()
        while not self._stopping.is_set():
            now_ns = time.monotonic_ns()
            deadlines = [t for t in (self.core.get_timer(),) if t is not None]
            if backlog or retries:
                deadlines.append(next_slot_ns)
            timeout_s = (
                max(0.0, (min(deadlines) - now_ns) / 1e9) if deadlines else IDLE_WAIT_S
            )
            readable, _, _ = select.select([sock_fd, self._wake_r], [], [], timeout_s)
            if sock_fd in readable:
                self._receive_all()
            if self._wake_r in readable:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
                while True:
                    try:
                        backlog.append(self._inbox.get_nowait())
                    except queue.Empty:
                        break
            now_ns = time.monotonic_ns()
            retries.extend(self.core.handle_timer(now_ns, time.time_ns()))
            # Pace sends; a burst after idling is capped at one slot so load stays smooth.
            next_slot_ns = max(next_slot_ns, now_ns - self._interval_ns)
            while (retries or backlog) and next_slot_ns <= now_ns:
                if retries:
                    self._send(retries.popleft())
                else:
                    self._send(self.core.challenge(backlog.popleft(), time.time_ns()))
                next_slot_ns += self._interval_ns
                now_ns = time.monotonic_ns()
