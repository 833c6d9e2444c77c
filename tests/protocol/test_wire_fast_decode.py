"""`decode_challenge` and `decode_response` read a well-formed datagram in a few slices (the
verifier decodes one of each per uploaded measurement): for every input they must give exactly
what the general `decode` gives, the same message or the same WireError."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import WireError
from protocol.wire import (
    MAX_DATAGRAM_BYTES,
    Challenge,
    Response,
    decode,
    decode_challenge,
    decode_response,
)
from tests.protocol.test_wire import GOLDEN_CHALLENGE, GOLDEN_RESPONSE


def _general(data: bytes, kind: type[Challenge | Response]) -> Challenge | Response | str:
    """What the general decoder makes of `data` for a caller expecting `kind`."""
    try:
        message = decode(data)
    except WireError as exc:
        return str(exc)
    if not isinstance(message, kind):
        return f"expected a {kind.__name__.upper()}, got {type(message).__name__}"
    return message


def _fast(data: bytes, kind: type[Challenge | Response]) -> Challenge | Response | str:
    try:
        return decode_challenge(data) if kind is Challenge else decode_response(data)
    except WireError as exc:
        return str(exc)


@st.composite
def mutated(draw: st.DrawFn, golden: bytes) -> bytes:
    """The golden datagram with bytes replaced, removed or added (lengths and ids included)."""
    data = bytearray(golden)
    for _ in range(draw(st.integers(0, 3))):
        action = draw(st.sampled_from(["set", "cut", "add"]))
        at = draw(st.integers(0, len(data)))
        if action == "set" and at < len(data):
            data[at] = draw(st.integers(0, 255))
        elif action == "cut" and data:
            del data[at:at + draw(st.integers(1, 8))]
        else:
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@given(mutated(GOLDEN_CHALLENGE))
def test_challenge_fast_path_agrees_with_decode(data: bytes) -> None:
    assert _fast(data, Challenge) == _general(data, Challenge)


@given(mutated(GOLDEN_RESPONSE))
def test_response_fast_path_agrees_with_decode(data: bytes) -> None:
    assert _fast(data, Response) == _general(data, Response)


@given(st.binary(max_size=300))
def test_fast_paths_agree_on_arbitrary_bytes(data: bytes) -> None:
    assert _fast(data, Challenge) == _general(data, Challenge)
    assert _fast(data, Response) == _general(data, Response)


@pytest.mark.parametrize(("data", "message"), [
    (GOLDEN_CHALLENGE[:4] + b"\x00" + GOLDEN_CHALLENGE[9:], "invalid landmark id ''"),
    (GOLDEN_CHALLENGE[:4] + b"\x04l\xc3\xa9m" + GOLDEN_CHALLENGE[9:], "invalid landmark id"),
    (GOLDEN_CHALLENGE[:-1], "truncated"),
    (GOLDEN_CHALLENGE + b"\x00", "trailing"),
    (GOLDEN_CHALLENGE[:4], "truncated"),
    (GOLDEN_CHALLENGE + bytes(MAX_DATAGRAM_BYTES), "oversized"),
    (GOLDEN_RESPONSE, "expected a CHALLENGE, got Response"),
])
def test_malformed_challenges_named_as_before(data: bytes, message: str) -> None:
    with pytest.raises(WireError, match=message):
        decode_challenge(data)
