"""Wire format: golden byte vectors, round trips, and fuzzing of the decoder."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import ProtocolError, SignatureError, WireError
from protocol.keys import SoftwareSigner
from protocol.wire import (
    MAX_DATAGRAM_BYTES,
    Challenge,
    ErrorCode,
    ErrorMessage,
    Hello,
    Response,
    decode,
    decode_challenge,
    hello_datagrams,
    sign_challenge,
    sign_response,
    verify_response,
)

LANDMARK = SoftwareSigner(bytes(range(32)))
CHIP = SoftwareSigner(bytes(range(32, 64)))
NONCE = bytes([0xAB]) * 32

# Field by field, so a reviewer can check the layout against docs/protocol.md.
GOLDEN_CHALLENGE = bytes.fromhex(
    "4c46" "01" "01"  # magic "LF", version 1, CHALLENGE
    "04" "6c6d2d31"  # landmark id "lm-1"
    "05" "6770752d30"  # target id "gpu-0"
    + "ab" * 32  # nonce
    + "17979cfe362a0000"  # issued_unix_ns 1_700_000_000_000_000_000
    "17979cfead5f9400"  # expires_unix_ns 1_700_000_002_000_000_000
    "0000000000000007"  # sequence 7
    # Ed25519 is deterministic, so the landmark signature is a fixed vector too.
    "54ee41a7e0e46255df5ead8de1f9443f2bf9cb858f99e942915d95b5968098d2"
    "abfc1a5e3a7e4d5f6cfb55347a61ae7f01bec608dc0462e31939dc1a4f585007"
)
GOLDEN_RESPONSE = bytes.fromhex(
    "4c46" "01" "02"
    + "ab" * 32
    + "9a4d6adb6f5b2873b0594bbd69f908b82e766858b864b144bde48722f52ea2be"
    "e0d532e86840c9375d985d16e477ade24039edb9662491997c249c4e832fe50c"
)
GOLDEN_HELLO = bytes.fromhex("4c460103" "17979cfe362a0000" "0002" "056770752d30" "056770752d31")
GOLDEN_ERROR = bytes.fromhex("4c460104" "02" + "ab" * 32)


def golden_challenge() -> Challenge:
    return sign_challenge(
        LANDMARK, landmark_id="lm-1", target_id="gpu-0", nonce=NONCE,
        issued_unix_ns=1_700_000_000_000_000_000, expires_unix_ns=1_700_000_002_000_000_000,
        sequence=7,
    )


def test_challenge_golden_vector() -> None:
    challenge = golden_challenge()
    assert challenge.encode() == GOLDEN_CHALLENGE
    assert decode(GOLDEN_CHALLENGE) == challenge
    challenge.verify(LANDMARK.public_key())


def test_response_golden_vector_and_no_amplification() -> None:
    response = sign_response(CHIP, GOLDEN_CHALLENGE, NONCE)
    assert response.encode() == GOLDEN_RESPONSE
    assert decode(GOLDEN_RESPONSE) == response
    verify_response(response, GOLDEN_CHALLENGE, CHIP.public_key())
    assert len(GOLDEN_RESPONSE) < len(GOLDEN_CHALLENGE)


def test_hello_and_error_golden_vectors() -> None:
    assert Hello(1_700_000_000_000_000_000, ("gpu-0", "gpu-1")).encode() == GOLDEN_HELLO
    assert decode(GOLDEN_HELLO) == Hello(1_700_000_000_000_000_000, ("gpu-0", "gpu-1"))
    assert ErrorMessage(ErrorCode.EXPIRED, NONCE).encode() == GOLDEN_ERROR
    assert decode(GOLDEN_ERROR) == ErrorMessage(ErrorCode.EXPIRED, NONCE)


def test_challenge_signed_by_other_key_is_rejected() -> None:
    with pytest.raises(SignatureError, match="does not verify"):
        golden_challenge().verify(CHIP.public_key())


def test_tampered_challenge_fails_signature() -> None:
    tampered = bytearray(GOLDEN_CHALLENGE)
    tampered[-65] ^= 1  # last byte of the sequence field
    with pytest.raises(SignatureError):
        decode_challenge(bytes(tampered)).verify(LANDMARK.public_key())


def test_response_for_another_challenge_is_rejected() -> None:
    other = sign_challenge(
        LANDMARK, landmark_id="lm-1", target_id="gpu-0", nonce=NONCE,
        issued_unix_ns=1, expires_unix_ns=2, sequence=8,
    ).encode()
    response = sign_response(CHIP, other, NONCE)
    with pytest.raises(SignatureError):
        verify_response(response, GOLDEN_CHALLENGE, CHIP.public_key())
    wrong_nonce = sign_response(CHIP, GOLDEN_CHALLENGE, bytes(32))
    with pytest.raises(WireError, match="nonce does not match"):
        verify_response(wrong_nonce, GOLDEN_CHALLENGE, CHIP.public_key())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (GOLDEN_CHALLENGE[:-1], "truncated"),
        (GOLDEN_CHALLENGE + b"\x00", "trailing"),
        (b"XX" + GOLDEN_CHALLENGE[2:], "bad magic"),
        (GOLDEN_CHALLENGE[:2] + b"\x02" + GOLDEN_CHALLENGE[3:], "unsupported version"),
        (GOLDEN_CHALLENGE[:3] + b"\x09" + GOLDEN_CHALLENGE[4:], "unknown message type"),
        (GOLDEN_ERROR[:4] + b"\x63" + GOLDEN_ERROR[5:], "unknown error code"),
        (b"\x00" * (MAX_DATAGRAM_BYTES + 1), "oversized"),
        (b"", "truncated"),
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
    id_pair: tuple[str, str], nonce: bytes, numbers: tuple[int, int, int], sig: bytes
) -> None:
    landmark_id, target_id = id_pair
    issued, expires, seq = numbers
    issued, expires = min(issued, expires), max(issued, expires)
    if issued == expires:
        expires = issued + 1 if issued < 2**64 - 1 else expires
        issued = expires - 1
    message = Challenge(landmark_id, target_id, nonce, issued, expires, seq, sig)
    data = message.encode()
    assert decode(data) == message
    # The smallest response never exceeds the smallest challenge: no amplification.
    assert len(Response(nonce, sig).encode()) < len(data)


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


@given(st.binary(min_size=1, max_size=8), st.integers(0, len(GOLDEN_CHALLENGE) - 1))
def test_fuzz_mutated_challenge(patch: bytes, offset: int) -> None:
    data = GOLDEN_CHALLENGE[:offset] + patch + GOLDEN_CHALLENGE[offset + len(patch) :]
    try:
        decode_challenge(data).verify(LANDMARK.public_key())
    except ProtocolError:
        return
    assert data == GOLDEN_CHALLENGE
