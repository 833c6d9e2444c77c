"""`verify_record_answer` reads well-formed CHALLENGE and RESPONSE datagrams in place instead
of decoding them into messages (the verifier runs it once per uploaded measurement). For every
record, however its datagrams, times and nonce are altered, it must accept exactly what the
message-decoding check accepts and fail the same way (WireError or SignatureError): the
reference below is that check as it was before the in-place reading."""

from __future__ import annotations

import dataclasses

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.errors import SignatureError, WireError
from protocol.keys import verify_signature
from protocol.records import MeasurementRecord, verify_record_answer
from protocol.wire import (
    decode_challenge,
    decode_response,
    response_signed_bytes,
    sign_challenge,
    sign_response,
)
from tests.protocol.test_records import CHIP, LANDMARK, NONCE, OTHER, make_record
from tests.protocol.test_wire_fast_decode import mutated

ISSUED_NS = 1_700_000_000_000_000_000
RECORD = make_record()


def _reference(record: MeasurementRecord, target_public_key: bytes) -> None:
    challenge = decode_challenge(record.challenge)
    if challenge.landmark_id != record.landmark_id:
        raise WireError("record landmark id does not match its challenge")
    if challenge.target_id != record.target_id:
        raise WireError("record target id does not match its challenge")
    challenge.check_nonce(record.nonce)
    if not challenge.issued_unix_ns <= record.sent_unix_ns < challenge.expires_unix_ns:
        raise WireError("record send time lies outside the challenge's validity")
    if record.sent_unix_ns + record.rtt_ns > challenge.expires_unix_ns:
        raise WireError("the response arrived after the challenge expired")
    response = decode_response(record.response)
    if response.nonce != record.nonce:
        raise WireError("record nonce does not match its response")
    verify_signature(target_public_key, response_signed_bytes(record.challenge, record.nonce),
                     response.signature)


def _outcome(check: object, record: MeasurementRecord, key: bytes) -> str:
    try:
        check(record, key)  # type: ignore[operator]
    except SignatureError:
        return "signature"
    except WireError:
        return "wire"
    return "ok"


def _agree(record: MeasurementRecord, key: bytes) -> str:
    found = _outcome(verify_record_answer, record, key)
    assert found == _outcome(_reference, record, key)
    return found


@st.composite
def challenges(draw: st.DrawFn) -> bytes:
    """Signed challenges with chosen ids and validity (expiring before issue included: built
    by hand, as `Challenge` refuses them), then maybe mutated byte by byte."""
    landmark_id = draw(st.sampled_from(["lm-1", "lm-2", "lm!1"]))
    target_id = draw(st.sampled_from(["gpu-0", "gpu-1", "gpu 0"]))
    expires_ns = ISSUED_NS + draw(st.sampled_from([-1, 0, 1, 2_000_000_000]))
    good = sign_challenge(LANDMARK, landmark_id="lm-1", target_id="gpu-0", nonce=NONCE,
                          issued_unix_ns=ISSUED_NS, expires_unix_ns=ISSUED_NS + 2_000_000_000,
                          sequence=7).encode()
    data = (good[:4] + bytes([len(landmark_id)]) + landmark_id.encode()
            + bytes([len(target_id)]) + target_id.encode() + good[15:47]
            + ISSUED_NS.to_bytes(8, "big") + expires_ns.to_bytes(8, "big", signed=True)
            + good[63:])
    return draw(st.one_of(st.just(data), mutated(data), mutated(good)))


@settings(max_examples=300)
@given(challenge=challenges(),
       response_kind=st.sampled_from(["signed", "other_key", "mutated"]),
       response_bytes=mutated(RECORD.response),
       sent_offset_ns=st.sampled_from([-1, 0, 100_000, 1_999_999_999, 2_000_000_000]),
       rtt_ns=st.sampled_from([1, 123_456, 2_000_000_000]),
       other_nonce=st.booleans())
def test_in_place_reading_agrees_with_decoding(
        *, challenge: bytes, response_kind: str, response_bytes: bytes, sent_offset_ns: int,
        rtt_ns: int, other_nonce: bool) -> None:
    nonce = bytes(32) if other_nonce else NONCE
    response = {"signed": sign_response(CHIP, challenge, NONCE).encode(),
                "other_key": sign_response(OTHER, challenge, NONCE).encode(),
                "mutated": response_bytes}[response_kind]
    record = dataclasses.replace(RECORD, challenge=challenge, response=response, nonce=nonce,
                                 sent_unix_ns=ISSUED_NS + sent_offset_ns, rtt_ns=rtt_ns)
    _agree(record, CHIP.public_key())


def test_the_unaltered_record_verifies_and_a_wrong_key_fails_its_signature() -> None:
    assert _agree(RECORD, CHIP.public_key()) == "ok"
    assert _agree(RECORD, OTHER.public_key()) == "signature"
    assert _agree(RECORD, LANDMARK.public_key()) == "signature"
