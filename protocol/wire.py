"""The UDP wire format: versioned, big-endian, explicit lengths, one message per datagram.

Every datagram starts with a 4-byte header: magic ``b"LF"``, version (1), message type.

CHALLENGE (landmark → target), 126 bytes + the two id lengths::

    header(4) | landmark_id: u8 len + ASCII | target_id: u8 len + ASCII | nonce(32)
    | issued_unix_ns: u64 | expires_unix_ns: u64 | sequence: u64 | signature(64)

    signature = Ed25519_landmark(CHALLENGE_DOMAIN || every preceding byte of the datagram)

RESPONSE (target → landmark), always 100 bytes::

    header(4) | nonce(32) | signature(64)

    signature = Ed25519_target(RESPONSE_DOMAIN || SHA-256(exact CHALLENGE datagram))

The response echoes only the nonce (so the landmark finds its pending challenge) and signs a
digest of the exact challenge bytes, so it binds landmark, target, nonce, times and sequence while
staying smaller than the smallest possible challenge (128 bytes): no amplification.

HELLO (agent → landmark, opens NAT/firewall paths; unsigned, only a hint)::

    header(4) | sent_unix_ns: u64 | count: u16 | count × (u8 len + ASCII chip id)

ERROR (target → landmark, only in reply to a correctly signed challenge), 37 bytes::

    header(4) | code: u8 | nonce(32)
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import IntEnum

from protocol.codec import Reader, Writer, validate_id
from protocol.errors import WireError
from protocol.keys import SIGNATURE_BYTES, Signer, verify_signature

MAGIC = b"LF"
VERSION = 1
NONCE_BYTES = 32
MAX_DATAGRAM_BYTES = 1200  # below every common path MTU, so nothing is fragmented
CHALLENGE_DOMAIN = b"lightfence/challenge/v1\x00"
RESPONSE_DOMAIN = b"lightfence/response/v1\x00"
_U64_MAX = (1 << 64) - 1


class MessageType(IntEnum):
    CHALLENGE = 1
    RESPONSE = 2
    HELLO = 3
    ERROR = 4


class ErrorCode(IntEnum):
    UNKNOWN_TARGET = 1  # the challenge names a chip this agent does not hold
    EXPIRED = 2  # the challenge expired (or was issued in the future) by the agent's clock


def _header(kind: MessageType) -> Writer:
    return Writer().raw(MAGIC).u8(VERSION).u8(kind)


def _check_u64(value: int, what: str) -> None:
    if not 0 <= value <= _U64_MAX:
        raise WireError(f"{what} {value} does not fit an unsigned 64-bit field")


def _check_len(value: bytes, size: int, what: str) -> None:
    if len(value) != size:
        raise WireError(f"{what} must be {size} bytes, got {len(value)}")


@dataclass(frozen=True, slots=True)
class Challenge:
    landmark_id: str
    target_id: str  # a chip id, or a landmark id for mesh probes
    nonce: bytes
    issued_unix_ns: int
    expires_unix_ns: int
    sequence: int
    signature: bytes

    def __post_init__(self) -> None:
        validate_id(self.landmark_id, "landmark id")
        validate_id(self.target_id, "target id")
        _check_len(self.nonce, NONCE_BYTES, "nonce")
        _check_len(self.signature, SIGNATURE_BYTES, "challenge signature")
        _check_u64(self.issued_unix_ns, "issued_unix_ns")
        _check_u64(self.expires_unix_ns, "expires_unix_ns")
        _check_u64(self.sequence, "sequence")
        if self.expires_unix_ns <= self.issued_unix_ns:
            raise WireError("challenge expires before it is issued")

    def unsigned_bytes(self) -> bytes:
        return (
            _header(MessageType.CHALLENGE)
            .short_str(self.landmark_id)
            .short_str(self.target_id)
            .raw(self.nonce)
            .u64(self.issued_unix_ns)
            .u64(self.expires_unix_ns)
            .u64(self.sequence)
            .bytes()
        )

    def encode(self) -> bytes:
        return self.unsigned_bytes() + self.signature

    def verify(self, landmark_public_key: bytes) -> None:
        """SignatureError unless the landmark key signed this challenge."""
        verify_signature(
            landmark_public_key, CHALLENGE_DOMAIN + self.unsigned_bytes(), self.signature
        )


@dataclass(frozen=True, slots=True)
class Response:
    nonce: bytes
    signature: bytes

    def __post_init__(self) -> None:
        _check_len(self.nonce, NONCE_BYTES, "nonce")
        _check_len(self.signature, SIGNATURE_BYTES, "response signature")

    def encode(self) -> bytes:
        return _header(MessageType.RESPONSE).raw(self.nonce).raw(self.signature).bytes()


@dataclass(frozen=True, slots=True)
class Hello:
    sent_unix_ns: int
    chip_ids: tuple[str, ...]

    def __post_init__(self) -> None:
        _check_u64(self.sent_unix_ns, "sent_unix_ns")
        if len(self.chip_ids) > 0xFFFF:
            raise WireError("too many chip ids in one HELLO")
        for chip_id in self.chip_ids:
            validate_id(chip_id, "chip id")

    def encode(self) -> bytes:
        writer = _header(MessageType.HELLO).u64(self.sent_unix_ns).u16(len(self.chip_ids))
        for chip_id in self.chip_ids:
            writer.short_str(chip_id)
        return writer.bytes()


@dataclass(frozen=True, slots=True)
class ErrorMessage:
    code: ErrorCode
    nonce: bytes

    def __post_init__(self) -> None:
        _check_len(self.nonce, NONCE_BYTES, "nonce")

    def encode(self) -> bytes:
        return _header(MessageType.ERROR).u8(self.code).raw(self.nonce).bytes()


Message = Challenge | Response | Hello | ErrorMessage


def decode(data: bytes) -> Message:
    """Parse one datagram. Any input gives a message or a WireError, never another exception."""
    if len(data) > MAX_DATAGRAM_BYTES:
        raise WireError(f"oversized: {len(data)} bytes > {MAX_DATAGRAM_BYTES}")
    reader = Reader(data)
    if reader.raw(2, "magic") != MAGIC:
        raise WireError("bad magic: not a Lightfence datagram")
    version = reader.u8("version")
    if version != VERSION:
        raise WireError(f"unsupported version {version} (this build speaks {VERSION})")
    kind = reader.u8("message type")
    message: Message
    if kind == MessageType.CHALLENGE:
        message = Challenge(
            landmark_id=reader.ident("landmark id"),
            target_id=reader.ident("target id"),
            nonce=reader.raw(NONCE_BYTES, "nonce"),
            issued_unix_ns=reader.u64("issued_unix_ns"),
            expires_unix_ns=reader.u64("expires_unix_ns"),
            sequence=reader.u64("sequence"),
            signature=reader.raw(SIGNATURE_BYTES, "signature"),
        )
    elif kind == MessageType.RESPONSE:
        message = Response(
            nonce=reader.raw(NONCE_BYTES, "nonce"),
            signature=reader.raw(SIGNATURE_BYTES, "signature"),
        )
    elif kind == MessageType.HELLO:
        sent_unix_ns = reader.u64("sent_unix_ns")
        count = reader.u16("chip id count")
        message = Hello(sent_unix_ns, tuple(reader.ident("chip id") for _ in range(count)))
    elif kind == MessageType.ERROR:
        code = reader.u8("error code")
        if code not in ErrorCode._value2member_map_:
            raise WireError(f"unknown error code {code}")
        message = ErrorMessage(ErrorCode(code), reader.raw(NONCE_BYTES, "nonce"))
    else:
        raise WireError(f"unknown message type {kind}")
    reader.end()
    return message


def decode_challenge(data: bytes) -> Challenge:
    message = decode(data)
    if not isinstance(message, Challenge):
        raise WireError(f"expected a CHALLENGE, got {type(message).__name__}")
    return message


def decode_response(data: bytes) -> Response:
    message = decode(data)
    if not isinstance(message, Response):
        raise WireError(f"expected a RESPONSE, got {type(message).__name__}")
    return message


def sign_challenge(
    signer: Signer, *, landmark_id: str, target_id: str, nonce: bytes,
    issued_unix_ns: int, expires_unix_ns: int, sequence: int,
) -> Challenge:
    unsigned = Challenge(
        landmark_id, target_id, nonce, issued_unix_ns, expires_unix_ns, sequence,
        bytes(SIGNATURE_BYTES),
    )
    signature = signer.sign(CHALLENGE_DOMAIN + unsigned.unsigned_bytes())
    return Challenge(
        landmark_id, target_id, nonce, issued_unix_ns, expires_unix_ns, sequence, signature
    )


def response_signed_bytes(challenge_datagram: bytes) -> bytes:
    """What a target signs: a domain-separated SHA-256 of the exact challenge datagram."""
    return RESPONSE_DOMAIN + hashlib.sha256(challenge_datagram).digest()


def sign_response(signer: Signer, challenge_datagram: bytes, nonce: bytes) -> Response:
    return Response(nonce, signer.sign(response_signed_bytes(challenge_datagram)))


def verify_response(response: Response, challenge_datagram: bytes, public_key: bytes) -> None:
    """WireError if the response is for another challenge; SignatureError if the key did not sign
    exactly this challenge."""
    challenge = decode_challenge(challenge_datagram)
    if response.nonce != challenge.nonce:
        raise WireError("response nonce does not match the challenge")
    verify_signature(public_key, response_signed_bytes(challenge_datagram), response.signature)


def hello_datagrams(sent_unix_ns: int, chip_ids: tuple[str, ...]) -> list[bytes]:
    """HELLO datagrams naming every chip id, split so none exceeds MAX_DATAGRAM_BYTES."""
    datagrams: list[bytes] = []
    chunk: list[str] = []
    size = 4 + 8 + 2
    for chip_id in chip_ids:
        entry = 1 + len(chip_id.encode("utf-8"))
        if chunk and size + entry > MAX_DATAGRAM_BYTES:
            datagrams.append(Hello(sent_unix_ns, tuple(chunk)).encode())
            chunk, size = [], 4 + 8 + 2
        chunk.append(chip_id)
        size += entry
    datagrams.append(Hello(sent_unix_ns, tuple(chunk)).encode())
    return datagrams
