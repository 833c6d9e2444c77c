"""UDP socket helpers for the timed path: kernel send and receive timestamps.

SO_TIMESTAMPNS makes Linux attach the time the packet entered the socket layer (CLOCK_REALTIME,
as a `struct timespec`) to every datagram, so the receive stamp excludes scheduling, `select` wake
up and Python overhead. Python's `socket` module does not export the constants, hence their values.

The send side is the same problem mirrored: a clock read in Python just before `sendto` can be
separated from the real send by a GIL hand-over to another thread (the switch interval is 5 ms),
and that whole wait would count as distance. SO_TIMESTAMPING with SOF_TIMESTAMPING_TX_SOFTWARE,
requested per packet for the timed datagram only, has the kernel stamp the packet when the driver
takes it (`skb_tx_timestamp`, loopback and veth included) and queue the stamp on the socket's
error queue, where it is read right after `sendmsg` returns. The stamp is never earlier than the
moment the packet could leave, so a round trip measured from it is never shorter than the truth.
"""

from __future__ import annotations

import socket
import struct
import sys

SO_TIMESTAMPNS = 35  # include/uapi/asm-generic/socket.h (SO_TIMESTAMPNS_OLD; 64-bit timespec)
SO_TIMESTAMPING = 37  # SO_TIMESTAMPING_OLD; its control messages are SCM_TIMESTAMPING (same value)
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1  # include/uapi/linux/net_tstamp.h
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11  # error-queue entries carry the stamp, not the payload
_TIMESPEC = struct.Struct("@qq")  # tv_sec, tv_nsec as native longs on 64-bit Linux
_SCM_TIMESTAMPING = struct.Struct("@qqqqqq")  # ts[3]; ts[0] is the software stamp
# Room for both receive stamps: with SOF_TIMESTAMPING_SOFTWARE set the kernel also reports the
# receive time as SCM_TIMESTAMPING next to SO_TIMESTAMPNS.
ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size) + socket.CMSG_SPACE(_SCM_TIMESTAMPING.size)
_ERRQUEUE_CONTROL_BYTES = 512
_TX_REQUEST = [(socket.SOL_SOCKET, SO_TIMESTAMPING,
                struct.pack("@I", SOF_TIMESTAMPING_TX_SOFTWARE))]


def open_udp_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    sock.bind((host, port))
    return sock


def enable_kernel_timestamps(sock: socket.socket) -> bool:
    """Ask for SO_TIMESTAMPNS; False where the platform does not offer it (then: monotonic)."""
    if not sys.platform.startswith("linux") or sys.maxsize <= 2**32:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    except OSError:
        return False
    return True


def kernel_timestamp_ns(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    """The SO_TIMESTAMPNS receive time in Unix ns from `recvmsg` ancillary data, if present."""
    for level, kind, data in ancdata:
        if level == socket.SOL_SOCKET and kind == SO_TIMESTAMPNS and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return None


def enable_tx_timestamps(sock: socket.socket) -> bool:
    """Let `send_stamped` ask for kernel send stamps; False where the platform cannot."""
    if not sys.platform.startswith("linux") or sys.maxsize <= 2**32:
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPING,
                        SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_TSONLY)
    except OSError:
        return False
    return True


def _scm_timestamping_ns(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancdata:
        if (level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING
                and len(data) >= _SCM_TIMESTAMPING.size):
            seconds, nanoseconds = _SCM_TIMESTAMPING.unpack_from(data)[:2]
            if seconds or nanoseconds:
                return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return None


def drain_tx_timestamps(sock: socket.socket) -> int | None:
    """Empty the error queue; the newest kernel send stamp in it (Unix ns), if any."""
    newest: int | None = None
    while True:
        try:
            _, ancdata, _, _ = sock.recvmsg(1, _ERRQUEUE_CONTROL_BYTES,
                                            socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT)
        except (BlockingIOError, InterruptedError):
            return newest
        except OSError:
            return newest
        stamp = _scm_timestamping_ns(ancdata)
        if stamp is not None:
            newest = stamp


def send_stamped(sock: socket.socket, datagram: bytes, address: tuple[str, int]) -> int | None:
    """Send with a per-packet kernel send stamp request; the stamp (Unix ns) or None."""
    drain_tx_timestamps(sock)  # stamps left over from earlier sends must not be taken for ours
    sock.sendmsg([datagram], _TX_REQUEST, 0, address)
    return drain_tx_timestamps(sock)
