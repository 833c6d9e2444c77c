"""The UDP wire format: versioned, big-endian, explicit lengths, one message per datagram.

Every datagram starts with a 4-byte header: magic ``b"LF"``, version (2), message type.

A measurement is a commit-reveal exchange, so the landmark's signature check (~100 µs) happens
before the clock starts and only a hash compare and the chip's signature sit in the timed path:

1. CHALLENGE (landmark → target, untimed), 126 bytes + the two id lengths::

       header(4) | landmark_id: u8 len + ASCII | target_id: u8 len + ASCII | commitment(32)
       | issued_unix_ns: u64 | expires_unix_ns: u64 | sequence: u64 | signature(64)

       commitment = SHA-256(COMMIT_DOMAIN || nonce), nonce = 32 fresh random bytes
       signature  = Ed25519_landmark(CHALLENGE_DOMAIN || every preceding byte of the datagram)

2. READY (target → landmark, 36 bytes): ``header(4) | commitment(32)``, sent once the target has
   verified and stored the challenge. Unsigned, only a hint to send the reveal now.
3. REVEAL (landmark → target, timed from here), 100 bytes::

       header(4) | nonce(32) | zero padding(64)

   The padding makes the REVEAL exactly as large as the RESPONSE it triggers: no amplification.
4. RESPONSE (target → landmark, timed until here), 100 bytes::

       header(4) | nonce(32) | signature(64)

       signature = Ed25519_target(RESPONSE_DOMAIN || SHA-256(exact CHALLENGE datagram) || nonce)

HELLO (agent → landmark, opens NAT/firewall paths; unsigned, only a hint)::

    header(4) | sent_unix_ns: u64 | count: u16 | count × (u8 len + ASCII chip id)

ERROR (target → landmark, only in reply to a correctly signed challenge), 37 bytes::

    header(4) | code: u8 | commitment(32)
"""

from __future__ import annotations

import hashlib
import struct
from dataclasses import dataclass
from enum import IntEnum

from protocol.codec import Reader, Writer, validate_id
from protocol.errors import WireError
from protocol.keys import SIGNATURE_BYTES, Signer, verify_signature

MAGIC = b"LF"
VERSION = 2  # 2: commit-reveal challenges (1 carried the nonce in the signed challenge)
NONCE_BYTES = 32
COMMITMENT_BYTES = 32
MAX_DATAGRAM_BYTES = 1200  # below every common path MTU, so nothing is fragmented
CHALLENGE_DOMAIN = b"lightfence/challenge/v2\x00"
RESPONSE_DOMAIN = b"lightfence/response/v2\x00"
COMMIT_DOMAIN = b"lightfence/nonce-commitment/v2\x00"
RESPONSE_BYTES = 4 + NONCE_BYTES + SIGNATURE_BYTES
REVEAL_BYTES = RESPONSE_BYTES  # padded so the reply is never larger than what caused it
READY_BYTES = 4 + COMMITMENT_BYTES
_U64_MAX = (1 << 64) - 1


class MessageType(IntEnum):
    CHALLENGE = 1
    RESPONSE = 2
    HELLO = 3
    ERROR = 4
    READY = 5
    REVEAL = 6


class ErrorCode(IntEnum):
    UNKNOWN_TARGET = 1  # the challenge names a chip this agent does not hold
    EXPIRED = 2  # the challenge expired (or was issued in the future) by the agent's clock


def _header(kind: MessageType) -> Writer:
    return Writer().raw(MAGIC).u8(VERSION).u8(kind)


REVEAL_HEADER = _header(MessageType.REVEAL).bytes()
_CHALLENGE_HEADER = _header(MessageType.CHALLENGE).bytes()
# A CHALLENGE after its two ids: commitment, issued, expires, sequence, signature.
_CHALLENGE_FIXED = struct.Struct(f">{COMMITMENT_BYTES}sQQQ{SIGNATURE_BYTES}s")
RESPONSE_HEADER = _header(MessageType.RESPONSE).bytes()
_REVEAL_PADDING = bytes(REVEAL_BYTES - 4 - NONCE_BYTES)


def nonce_commitment(nonce: bytes) -> bytes:
    """What a CHALLENGE carries instead of its nonce: SHA-256 over a domain and the nonce."""
    return hashlib.sha256(COMMIT_DOMAIN + nonce).digest()


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
    commitment: bytes  # nonce_commitment(nonce); the nonce itself travels in the timed REVEAL
    issued_unix_ns: int
    expires_unix_ns: int
    sequence: int
    signature: bytes

    def __post_init__(self) -> None:
        validate_id(self.landmark_id, "landmark id")
        validate_id(self.target_id, "target id")
        _check_len(self.commitment, COMMITMENT_BYTES, "commitment")
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
            .raw(self.commitment)
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

    def check_nonce(self, nonce: bytes) -> None:
        """WireError unless `nonce` is the one this challenge committed to."""
        if len(nonce) != NONCE_BYTES or nonce_commitment(nonce) != self.commitment:
            raise WireError("nonce does not open the challenge's commitment")


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
class Ready:
    commitment: bytes

    def __post_init__(self) -> None:
        _check_len(self.commitment, COMMITMENT_BYTES, "commitment")

    def encode(self) -> bytes:
        return _header(MessageType.READY).raw(self.commitment).bytes()


@dataclass(frozen=True, slots=True)
class Reveal:
    nonce: bytes

    def __post_init__(self) -> None:
        _check_len(self.nonce, NONCE_BYTES, "nonce")

    def encode(self) -> bytes:
        return REVEAL_HEADER + self.nonce + _REVEAL_PADDING


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
    commitment: bytes  # of the challenge refused

    def __post_init__(self) -> None:
        _check_len(self.commitment, COMMITMENT_BYTES, "commitment")

    def encode(self) -> bytes:
        return _header(MessageType.ERROR).u8(self.code).raw(self.commitment).bytes()


Message = Challenge | Response | Hello | ErrorMessage | Ready | Reveal


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
            commitment=reader.raw(COMMITMENT_BYTES, "commitment"),
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
        message = ErrorMessage(ErrorCode(code), reader.raw(COMMITMENT_BYTES, "commitment"))
    elif kind == MessageType.READY:
        message = Ready(reader.raw(COMMITMENT_BYTES, "commitment"))
    elif kind == MessageType.REVEAL:
        message = Reveal(reader.raw(NONCE_BYTES, "nonce"))
        # Canonical: one encoding per reveal, so the padding must be zeros.
        if reader.raw(len(_REVEAL_PADDING), "padding") != _REVEAL_PADDING:
            raise WireError("reveal padding must be zero bytes")
    else:
        raise WireError(f"unknown message type {kind}")
    reader.end()
    return message


def decode_challenge(data: bytes) -> Challenge:
    """`decode` for a datagram that must be a CHALLENGE. A well-formed one is read in a few
    slices (the verifier decodes one per uploaded measurement); anything else goes through
    `decode`, which names what is wrong."""
    fast = _challenge_fast(data)
    if fast is not None:
        return fast
    message = decode(data)
    if not isinstance(message, Challenge):
        raise WireError(f"expected a CHALLENGE, got {type(message).__name__}")
    return message


def decode_response(data: bytes) -> Response:
    if len(data) == RESPONSE_BYTES and data[:4] == RESPONSE_HEADER:  # the only valid layout
        return Response(data[4:4 + NONCE_BYTES], data[4 + NONCE_BYTES:])
    message = decode(data)
    if not isinstance(message, Response):
        raise WireError(f"expected a RESPONSE, got {type(message).__name__}")
    return message


def _challenge_fast(data: bytes) -> Challenge | None:
    """The CHALLENGE in `data` when its layout is exactly right, else None (then `decode`
    gives the error). Same checks as `decode`: the ids are validated by `Challenge` itself."""
    fields = challenge_fields(data)
    return None if fields is None else Challenge(*fields)


def challenge_fields(data: bytes) -> tuple[str, str, bytes, int, int, int, bytes] | None:
    """`Challenge`'s fields as laid out in `data` when the layout is exactly right (header,
    lengths, ASCII ids), else None. Not checked: that the ids are valid ids and that the
    challenge expires after it is issued (`Challenge.__post_init__`); a caller that compares
    the ids with valid ones and the send time with the validity needs neither."""
    if not 4 < len(data) <= MAX_DATAGRAM_BYTES or data[:4] != _CHALLENGE_HEADER:
        return None
    landmark_end = 5 + data[4]
    if landmark_end >= len(data):
        return None
    target_end = landmark_end + 1 + data[landmark_end]
    if len(data) != target_end + _CHALLENGE_FIXED.size:
        return None
    try:
        landmark_id = data[5:landmark_end].decode("ascii")  # ids are ASCII; others: `decode`
        target_id = data[landmark_end + 1:target_end].decode("ascii")
    except UnicodeDecodeError:
        return None
    return (landmark_id, target_id, *_CHALLENGE_FIXED.unpack_from(data, target_end))


def sign_challenge(
    signer: Signer, *, landmark_id: str, target_id: str, nonce: bytes,
    issued_unix_ns: int, expires_unix_ns: int, sequence: int,
) -> Challenge:
    """A signed challenge committing to `nonce` (which it does not contain)."""
    _check_len(nonce, NONCE_BYTES, "nonce")
    commitment = nonce_commitment(nonce)
    unsigned = Challenge(
        landmark_id, target_id, commitment, issued_unix_ns, expires_unix_ns, sequence,
        bytes(SIGNATURE_BYTES),
    )
    signature = signer.sign(CHALLENGE_DOMAIN + unsigned.unsigned_bytes())
    return Challenge(
        landmark_id, target_id, commitment, issued_unix_ns, expires_unix_ns, sequence, signature
    )


def challenge_digest(challenge_datagram: bytes) -> bytes:
    """SHA-256 of the exact CHALLENGE datagram (an agent computes it before the reveal)."""
    return hashlib.sha256(challenge_datagram).digest()


def response_signed_bytes(challenge_datagram: bytes, nonce: bytes) -> bytes:
    """What a target signs: a domain, the digest of the exact challenge, the revealed nonce."""
    return RESPONSE_DOMAIN + challenge_digest(challenge_datagram) + nonce


def sign_response(signer: Signer, challenge_datagram: bytes, nonce: bytes) -> Response:
    return Response(nonce, signer.sign(response_signed_bytes(challenge_datagram, nonce)))


def verify_response(response: Response, challenge_datagram: bytes, public_key: bytes) -> None:
    """WireError if the response's nonce does not open this challenge's commitment;
    SignatureError if the key did not sign exactly this challenge and nonce."""
    decode_challenge(challenge_datagram).check_nonce(response.nonce)
    verify_signature(
        public_key, response_signed_bytes(challenge_datagram, response.nonce), response.signature
    )


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
