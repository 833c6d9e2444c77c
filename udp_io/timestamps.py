"""UDP socket helpers for the timed path: kernel send and receive timestamps.

SO_TIMESTAMPNS makes Linux attach the time the packet entered the socket layer (CLOCK_REALTIME,
as a `struct timespec`) to every datagram, so the receive stamp excludes scheduling, `select` wake
up and Python overhead. Python's `socket` module does not export the constants, hence their values.

The send side is the same problem mirrored: a clock read in Python just before `sendto` can be
separated from the real send by a GIL hand-over to another thread (the switch interval is 5 ms),
and that whole wait would count as distance. SO_TIMESTAMPING with SOF_TIMESTAMPING_TX_SOFTWARE,
requested per packet for the timed datagram only, has the kernel stamp the packet when the driver
takes it (`skb_tx_timestamp`, loopback and veth included) and queue the stamp on the socket's
error queue with the packet's SOF_TIMESTAMPING_OPT_ID key. The stamp is never earlier than the
moment the packet could leave, so a round trip measured from it is never shorter than the truth,
provided it is the stamp of *that* packet: `udp_io.txstamps` pairs stamps with sends by key.
"""

from __future__ import annotations

import functools
import socket
import struct
import sys

SO_TIMESTAMPNS = 35  # include/uapi/asm-generic/socket.h (SO_TIMESTAMPNS_OLD; 64-bit timespec)
SO_TIMESTAMPING = 37  # SO_TIMESTAMPING_OLD; its control messages are SCM_TIMESTAMPING (same value)
SOF_TIMESTAMPING_TX_SOFTWARE = 1 << 1  # include/uapi/linux/net_tstamp.h
SOF_TIMESTAMPING_SOFTWARE = 1 << 4
SOF_TIMESTAMPING_OPT_ID = 1 << 7  # each stamp carries its packet's key in ee_data
SOF_TIMESTAMPING_OPT_TSONLY = 1 << 11  # error-queue entries carry the stamp, not the payload
SCM_TS_OPT_ID = 81  # per-packet OPT_ID key as a control message (Linux >= 6.13)
_SOL_IPV6 = getattr(socket, "SOL_IPV6", 41)
_RECVERR = ((socket.SOL_IP, 11), (_SOL_IPV6, 25))  # IP_RECVERR, IPV6_RECVERR control messages
_SO_EE_ORIGIN_TIMESTAMPING = 4
_SCM_TSTAMP_SND = 0  # ee_info: the stamp taken when the driver took the packet
_SOCK_EXTENDED_ERR = struct.Struct("@IBBBBII")  # errno, origin, type, code, pad, info, data
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
    """Let `send_tx_stamped` ask for kernel send stamps, each carrying its packet's OPT_ID key
    (numbered from 0 on this socket); False where the platform cannot."""
    if not sys.platform.startswith("linux") or sys.maxsize <= 2**32:
        return False
    try:
        sock.setsockopt(
            socket.SOL_SOCKET,
            SO_TIMESTAMPING,
            SOF_TIMESTAMPING_SOFTWARE | SOF_TIMESTAMPING_OPT_TSONLY | SOF_TIMESTAMPING_OPT_ID,
        )
    except OSError:
        return False
    return True


@functools.cache
def explicit_tx_keys_supported() -> bool:
    """Whether `sendmsg` takes SCM_TS_OPT_ID (Linux >= 6.13), tried once on a scratch socket."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", 0))
            if not enable_tx_timestamps(probe):
                return False
            send_tx_stamped(probe, b"", probe.getsockname(), key=0)
        except OSError:
            return False
    return True


def send_tx_stamped(
    sock: socket.socket, datagram: bytes, address: tuple[str, int], key: int | None
) -> None:
    """Send asking for a kernel send stamp; with `key`, the stamp carries that OPT_ID key
    (SCM_TS_OPT_ID), else the socket's next number. Read the stamp with `read_tx_stamps`."""
    control = list(_TX_REQUEST)
    if key is not None:
        control.append((socket.SOL_SOCKET, SCM_TS_OPT_ID, struct.pack("@I", key)))
    sock.sendmsg([datagram], control, 0, address)


def _scm_timestamping_ns(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancdata:
        if (level == socket.SOL_SOCKET and kind == SO_TIMESTAMPING
                and len(data) >= _SCM_TIMESTAMPING.size):
            seconds, nanoseconds = _SCM_TIMESTAMPING.unpack_from(data)[:2]
            if seconds or nanoseconds:
                return int(seconds) * 1_000_000_000 + int(nanoseconds)
    return None


def read_tx_stamps(sock: socket.socket) -> list[tuple[int, int]]:
    """Empty the error queue: (OPT_ID key, send stamp in Unix ns) of each send stamp in it.
    Entries without a key or a stamp (an ICMP error, say) are dropped."""
    stamps: list[tuple[int, int]] = []
    while True:
        try:
            _, ancdata, _, _ = sock.recvmsg(
                1, _ERRQUEUE_CONTROL_BYTES, socket.MSG_ERRQUEUE | socket.MSG_DONTWAIT
            )
        except OSError:  # BlockingIOError: empty; anything else: nothing more to read now
            return stamps
        stamp = _scm_timestamping_ns(ancdata)
        key = _timestamping_key(ancdata)
        if stamp is not None and key is not None:
            stamps.append((key, stamp))


def _timestamping_key(ancdata: list[tuple[int, int, bytes]]) -> int | None:
    for level, kind, data in ancdata:
        if (level, kind) in _RECVERR and len(data) >= _SOCK_EXTENDED_ERR.size:
            _, origin, _, _, _, info, key = _SOCK_EXTENDED_ERR.unpack_from(data)
            if origin == _SO_EE_ORIGIN_TIMESTAMPING and info == _SCM_TSTAMP_SND:
                return int(key)
    return None
