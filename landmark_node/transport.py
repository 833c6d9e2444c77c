"""UDP socket helpers for the timed path: kernel receive timestamps via `recvmsg`.

SO_TIMESTAMPNS makes Linux attach the time the packet entered the socket layer (CLOCK_REALTIME,
as a `struct timespec`) to every datagram, so the receive stamp excludes scheduling, `select` wake
up and Python overhead. Python's `socket` module does not export the constant, hence its value.
"""

from __future__ import annotations

import socket
import struct
import sys

SO_TIMESTAMPNS = 35  # include/uapi/asm-generic/socket.h (SO_TIMESTAMPNS_OLD; 64-bit timespec)
_TIMESPEC = struct.Struct("@qq")  # tv_sec, tv_nsec as native longs on 64-bit Linux
ANCILLARY_BYTES = socket.CMSG_SPACE(_TIMESPEC.size)


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
