"""Wire format: golden byte vectors, round trips, and fuzzing of the decoder."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import ProtocolError, SignatureError, WireError
from protocol.keys import SoftwareSigner
from protocol.wire import (
    COMMIT_DOMAIN,
    MAX_DATAGRAM_BYTES,
    RESPONSE_BYTES,
    REVEAL_BYTES,
    Challenge,
    ErrorCode,
    ErrorMessage,
    Hello,
    Ready,
    Response,
    Reveal,
    decode,
    decode_challenge,
    hello_datagrams,
    nonce_commitment,
    sign_challenge,
    sign_response,
    verify_response,
)

LANDMARK = SoftwareSigner(bytes(range(32)))
CHIP = SoftwareSigner(bytes(range(32, 64)))
NONCE = bytes([0xAB]) * 32
# SHA-256("lightfence/nonce-commitment/v2\0" || 0xab × 32)
COMMITMENT = bytes.fromhex("952b5105ca6e506ab465565762bcc80f84b8d94eeed34ef729e402a943d23e65")

# Field by field, so a reviewer can check the layout against docs/protocol.md.
GOLDEN_CHALLENGE = bytes.fromhex(
    "4c46" "02" "01"  # magic "LF", version 2, CHALLENGE
    "04" "6c6d2d31"  # landmark id "lm-1"
    "05" "6770752d30"  # target id "gpu-0"
    + COMMITMENT.hex()  # commitment to the nonce, not the nonce
    + "17979cfe362a0000"  # issued_unix_ns 1_700_000_000_000_000_000
    "17979cfead5f9400"  # expires_unix_ns 1_700_000_002_000_000_000
    "0000000000000007"  # sequence 7
    # Ed25519 is deterministic, so the landmark signature is a fixed vector too.
    "c3d4b4b10881f915aa4a85bc22bb51f942f51931b5c04c94bea76015e2dc2725"
    "1be9119afe6f372ecc6b52eac7dfaaa58d7c065a7d235954b258db8d87b3cc01"
)
GOLDEN_READY = bytes.fromhex("4c460205" + COMMITMENT.hex())
GOLDEN_REVEAL = bytes.fromhex("4c460206" + "ab" * 32 + "00" * 64)  # nonce, zero padding
GOLDEN_RESPONSE = bytes.fromhex(
    "4c46" "02" "02"
    + "ab" * 32
    # Ed25519_chip("lightfence/response/v2\0" || SHA-256(GOLDEN_CHALLENGE) || nonce)
    + "3e1576e763fcd0addbba9bffd3820309544be704a99caae019a2a17955d02ba4"
    "b2aedcc5257547ba73dde40e3dffbeaf6ca307f83ada1f0df4cd4138ec8e940a"
)
GOLDEN_HELLO = bytes.fromhex("4c460203" "17979cfe362a0000" "0002" "056770752d30" "056770752d31")
GOLDEN_ERROR = bytes.fromhex("4c460204" "02" + COMMITMENT.hex())


def golden_challenge() -> Challenge:
    return sign_challenge(
        LANDMARK, landmark_id="lm-1", target_id="gpu-0", nonce=NONCE,
        issued_unix_ns=1_700_000_000_000_000_000, expires_unix_ns=1_700_000_002_000_000_000,
        sequence=7,
    )


def test_commitment_is_domain_separated_sha256() -> None:
    assert nonce_commitment(NONCE) == hashlib.sha256(COMMIT_DOMAIN + NONCE).digest() == COMMITMENT
    assert NONCE not in GOLDEN_CHALLENGE  # the nonce stays secret until the timed reveal


def test_challenge_golden_vector() -> None:
    challenge = golden_challenge()
    assert challenge.encode() == GOLDEN_CHALLENGE
    assert decode(GOLDEN_CHALLENGE) == challenge
    challenge.verify(LANDMARK.public_key())
    challenge.check_nonce(NONCE)
    with pytest.raises(WireError, match="does not open"):
        challenge.check_nonce(bytes(32))


def test_ready_reveal_response_golden_vectors_and_no_amplification() -> None:
    assert Ready(COMMITMENT).encode() == GOLDEN_READY
    assert decode(GOLDEN_READY) == Ready(COMMITMENT)
    assert Reveal(NONCE).encode() == GOLDEN_REVEAL
    assert decode(GOLDEN_REVEAL) == Reveal(NONCE)
    response = sign_response(CHIP, GOLDEN_CHALLENGE, NONCE)
    assert response.encode() == GOLDEN_RESPONSE
    assert decode(GOLDEN_RESPONSE) == response
    verify_response(response, GOLDEN_CHALLENGE, CHIP.public_key())
    # Every reply is at most the size of the datagram that caused it.
    assert len(GOLDEN_READY) < len(GOLDEN_CHALLENGE)
    assert len(GOLDEN_ERROR) < len(GOLDEN_CHALLENGE)
    assert len(GOLDEN_RESPONSE) == RESPONSE_BYTES <= len(GOLDEN_REVEAL) == REVEAL_BYTES


def test_hello_and_error_golden_vectors() -> None:
    assert Hello(1_700_000_000_000_000_000, ("gpu-0", "gpu-1")).encode() == GOLDEN_HELLO
    assert decode(GOLDEN_HELLO) == Hello(1_700_000_000_000_000_000, ("gpu-0", "gpu-1"))
    assert ErrorMessage(ErrorCode.EXPIRED, COMMITMENT).encode() == GOLDEN_ERROR
    assert decode(GOLDEN_ERROR) == ErrorMessage(ErrorCode.EXPIRED, COMMITMENT)


def test_challenge_signed_by_other_key_is_rejected() -> None:
    with pytest.raises(SignatureError, match="does not verify"):
        golden_challenge().verify(CHIP.public_key())


def test_tampered_challenge_fails_signature() -> None:
    tampered = bytearray(GOLDEN_CHALLENGE)
    tampered[-65] ^= 1  # last byte of the sequence field
    with pytest.raises(SignatureError):
        decode_challenge(bytes(tampered)).verify(LANDMARK.public_key())


def test_response_for_another_challenge_or_nonce_is_rejected() -> None:
    other = sign_challenge(
        LANDMARK, landmark_id="lm-1", target_id="gpu-0", nonce=NONCE,
        issued_unix_ns=1, expires_unix_ns=2, sequence=8,
    ).encode()
    response = sign_response(CHIP, other, NONCE)
    with pytest.raises(SignatureError):
        verify_response(response, GOLDEN_CHALLENGE, CHIP.public_key())
    wrong_nonce = sign_response(CHIP, GOLDEN_CHALLENGE, bytes(32))
    with pytest.raises(WireError, match="does not open"):
        verify_response(wrong_nonce, GOLDEN_CHALLENGE, CHIP.public_key())
    # The signature covers the nonce: the same signature with another nonce is refused even when
    # that nonce were to open the commitment.
    swapped = Response(NONCE, wrong_nonce.signature)
    with pytest.raises(SignatureError):
        verify_response(swapped, GOLDEN_CHALLENGE, CHIP.public_key())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (GOLDEN_CHALLENGE[:-1], "truncated"),
        (GOLDEN_CHALLENGE + b"\x00", "trailing"),
        (b"XX" + GOLDEN_CHALLENGE[2:], "bad magic"),
        (GOLDEN_CHALLENGE[:2] + b"\x01" + GOLDEN_CHALLENGE[3:], "unsupported version"),
        (GOLDEN_CHALLENGE[:3] + b"\x09" + GOLDEN_CHALLENGE[4:], "unknown message type"),
        (GOLDEN_ERROR[:4] + b"\x63" + GOLDEN_ERROR[5:], "unknown error code"),
        (b"\x00" * (MAX_DATAGRAM_BYTES + 1), "oversized"),
        (b"", "truncated"),
        (GOLDEN_REVEAL[:-1] + b"\x01", "padding must be zero"),
        (GOLDEN_REVEAL[:-1], "truncated"),
        (GOLDEN_READY + b"\x00", "trailing"),
        (GOLDEN_CHALLENGE[:4] + b"\x04lm 1" + GOLDEN_CHALLENGE[9:], "invalid landmark id"),
    ],
)
def test_malformed_datagrams_raise_wire_error(data: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        decode(data)


ids = st.from_regex(r"[A-Za-z0-9._-]{1,64}", fullmatch=True)
u64 = st.integers(0, 2**64 - 1)


@given(
    st.tuples(ids, ids),
    st.binary(min_size=32, max_size=32),
    st.tuples(u64, u64, u64),
    st.binary(min_size=64, max_size=64),
)
def test_challenge_round_trip(
    id_pair: tuple[str, str], commitment: bytes, numbers: tuple[int, int, int], sig: bytes
) -> None:
    landmark_id, target_id = id_pair
    issued, expires, seq = numbers
    issued, expires = min(issued, expires), max(issued, expires)
    if issued == expires:
        expires = issued + 1 if issued < 2**64 - 1 else expires
        issued = expires - 1
    message = Challenge(landmark_id, target_id, commitment, issued, expires, seq, sig)
    data = message.encode()
    assert decode(data) == message
    # READY and ERROR, the only replies to a challenge, are smaller than the smallest challenge.
    assert len(Ready(commitment).encode()) < len(data)
    assert len(ErrorMessage(ErrorCode.EXPIRED, commitment).encode()) < len(data)


@given(st.binary(min_size=32, max_size=32), st.binary(min_size=64, max_size=64))
def test_reveal_ready_response_round_trip(value: bytes, sig: bytes) -> None:
    for message in (Reveal(value), Ready(value), Response(value, sig)):
        assert decode(message.encode()) == message
    assert len(Response(value, sig).encode()) <= len(Reveal(value).encode())


@given(u64, st.lists(ids, max_size=80))
def test_hello_round_trip_and_split(sent: int, chip_ids: list[str]) -> None:
    datagrams = hello_datagrams(sent, tuple(chip_ids))
    assert all(len(d) <= MAX_DATAGRAM_BYTES for d in datagrams)
    decoded: list[str] = []
    for data in datagrams:
        message = decode(data)
        assert isinstance(message, Hello)
        decoded.extend(message.chip_ids)
    assert decoded == chip_ids


@given(st.binary(max_size=1400))
def test_fuzz_any_bytes_give_message_or_wire_error(data: bytes) -> None:
    try:
        message = decode(data)
    except WireError:
        return
    assert message.encode() == data  # decoding is canonical: nothing is accepted twice


@given(st.binary(min_size=1, max_size=8), st.integers(0, len(GOLDEN_REVEAL) - 1))
def test_fuzz_mutated_reveal_never_opens_the_commitment(patch: bytes, offset: int) -> None:
    data = GOLDEN_REVEAL[:offset] + patch + GOLDEN_REVEAL[offset + len(patch) :]
    try:
        message = decode(data)
    except WireError:
        return
    if isinstance(message, Reveal) and data != GOLDEN_REVEAL:
        with pytest.raises(WireError):
            golden_challenge().check_nonce(message.nonce)


@given(st.binary(min_size=1, max_size=8), st.integers(0, len(GOLDEN_CHALLENGE) - 1))
def test_fuzz_mutated_challenge(patch: bytes, offset: int) -> None:
    data = GOLDEN_CHALLENGE[:offset] + patch + GOLDEN_CHALLENGE[offset + len(patch) :]
    try:
        decode_challenge(data).verify(LANDMARK.public_key())
    except ProtocolError:
        return
    assert data == GOLDEN_CHALLENGE
