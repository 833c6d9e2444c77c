"""Signed measurement records and batches."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import ProtocolError, SignatureError, WireError
from protocol.keys import SoftwareSigner
from protocol.records import (
    NO_TASK_ID,
    MeasurementBatch,
    MeasurementRecord,
    sign_batch,
    sign_record,
    verify_batch,
    verify_record,
    verify_record_answer,
)
from protocol.wire import sign_challenge, sign_response

LANDMARK = SoftwareSigner(bytes(range(32)))
CHIP = SoftwareSigner(bytes(range(32, 64)))
OTHER = SoftwareSigner(bytes(range(96, 128)))
NONCE = bytes([0xAB]) * 32
GOLDEN_RECORD_SIGNATURE = bytes.fromhex(
    "e01b57e8b11d968280de474caee09b60a172aa388b1711dae14acb782fec1328"
    "f9612b4c4d8264049e6512b42ca6b2f8d6a289cab77b24a3288edcd467403f01"
)
GOLDEN_BATCH_SIGNATURE = bytes.fromhex(
    "568b3708758f76fbb264c700fd61674909f2c35b1deafc84a664a82599eb145d"
    "c826e1c54361c8df0f18acc0b54db4608a3d8dafa5dd1c53dda36e5ee6f6460c"
)


ROUND_ID = "c-1700000000000-abc123-gpu-0"
# Version 2: the domain, the ids, then the round and the task (u64), then the v1 fields.
GOLDEN_V2_PREFIX = bytes.fromhex(
    "6c6967687466656e63652f7265636f72642f763200"  # "lightfence/record/v2\0"
    "046c6d2d31" "0463686970" "056770752d30"  # lm-1, chip, gpu-0 (u8 length + bytes)
    "1c632d313730303030303030303030302d6162633132332d6770752d30"  # the round id
    "0000000000000029"  # task 41
)
GOLDEN_V2_SIGNATURE = bytes.fromhex(
    "6b7f3c2c5b9e5f238bace45f948e0c89b46386561a07fa682348ce9a9907f0a0"
    "6c77f163f5e3cda31576d79600867c6b1cd7dfc95cb5db0f99577d933b473408"
)


def make_record(target: SoftwareSigner = CHIP, /, **overrides: object) -> MeasurementRecord:
    challenge = sign_challenge(
        LANDMARK, landmark_id="lm-1", target_id="gpu-0", nonce=NONCE,
        issued_unix_ns=1_700_000_000_000_000_000, expires_unix_ns=1_700_000_002_000_000_000,
        sequence=7,
    ).encode()
    response = sign_response(target, challenge, NONCE).encode()
    fields: dict[str, object] = {
        "landmark_id": "lm-1", "target_kind": "chip", "target_id": "gpu-0", "nonce": NONCE,
        "sent_unix_ns": 1_700_000_000_000_100_000, "rtt_ns": 123_456, "clock_source": "kernel",
        "challenge": challenge, "response": response,
    }
    fields.update(overrides)
    return sign_record(LANDMARK, **fields)  # type: ignore[arg-type]


def test_record_golden_signature_and_verifies() -> None:
    record = make_record()
    assert record.signature == GOLDEN_RECORD_SIGNATURE
    verify_record(record, LANDMARK.public_key(), CHIP.public_key())


def test_batch_golden_signature_json_round_trip() -> None:
    batch = sign_batch(LANDMARK, "batch-1", "lm-1", (make_record(),))
    assert batch.signature == GOLDEN_BATCH_SIGNATURE
    again = MeasurementBatch.from_json(json.loads(json.dumps(batch.to_json())))
    assert again == batch
    verify_batch(again, LANDMARK.public_key())


def test_forged_chip_response_is_rejected() -> None:
    record = make_record(OTHER)
    with pytest.raises(SignatureError):
        verify_record(record, LANDMARK.public_key(), CHIP.public_key())


def test_record_altered_after_signing_is_rejected() -> None:
    record = dataclasses.replace(make_record(), rtt_ns=1)  # a landmark-claimed faster RTT
    with pytest.raises(SignatureError):
        verify_record(record, LANDMARK.public_key(), CHIP.public_key())


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"target_id": "gpu-1"}, "target id does not match"),
        ({"nonce": bytes(32)}, "does not open the challenge's commitment"),
        ({"sent_unix_ns": 1}, "outside the challenge's validity"),
        ({"rtt_ns": 3_000_000_000}, "after the challenge expired"),
    ],
)
def test_inconsistent_record_is_rejected(override: dict[str, object], message: str) -> None:
    with pytest.raises(WireError, match=message):
        verify_record(make_record(CHIP, **override), LANDMARK.public_key(), CHIP.public_key())


def test_response_with_another_nonce_than_the_record_is_rejected() -> None:
    # The chip answered (and signed) a different nonce than the one the record claims was
    # revealed: an auditor must not accept the record's nonce on the landmark's word.
    challenge = make_record().challenge
    other = sign_response(CHIP, challenge, bytes(32)).encode()
    record = make_record(CHIP, response=other)
    with pytest.raises(WireError, match="nonce does not match its response"):
        verify_record(record, LANDMARK.public_key(), CHIP.public_key())


def test_verify_record_answer_skips_only_landmark_signatures() -> None:
    record = dataclasses.replace(make_record(), signature=bytes(64))
    verify_record_answer(record, CHIP.public_key())
    with pytest.raises(SignatureError):
        verify_record(record, LANDMARK.public_key(), CHIP.public_key())
    with pytest.raises(SignatureError):
        verify_record_answer(make_record(OTHER), CHIP.public_key())


def test_batch_signature_covers_records() -> None:
    batch = sign_batch(LANDMARK, "batch-1", "lm-1", (make_record(),))
    dropped = dataclasses.replace(batch, records=())
    with pytest.raises(SignatureError):
        verify_batch(dropped, LANDMARK.public_key())
    foreign = dataclasses.replace(batch, landmark_id="lm-2")
    with pytest.raises(WireError, match="is from lm-1"):
        verify_batch(foreign, LANDMARK.public_key())


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"rtt_ns": 0}, "rtt_ns must be positive"),
        ({"rtt_ns": "1"}, "must be an integer"),
        ({"clock_source": "ntp"}, "clock_source must be one of"),
        ({"target_kind": "toaster"}, "target_kind must be one of"),
        ({"nonce_b64": "AAAA"}, "nonce_b64 must be 32 bytes"),
    ],
)
def test_malformed_record_json(patch: dict[str, object], message: str) -> None:
    with pytest.raises(WireError, match=message):
        MeasurementRecord.from_json({**make_record().to_json(), **patch})


@given(st.recursive(st.none() | st.integers() | st.text(max_size=5),
                    lambda inner: st.lists(inner, max_size=3)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12))
def test_fuzz_batch_json_gives_batch_or_wire_error(obj: object) -> None:
    try:
        MeasurementBatch.from_json(obj)
    except ProtocolError as exc:
        assert isinstance(exc, WireError)


def make_v2(**overrides: object) -> MeasurementRecord:
    return make_record(CHIP, round_id=ROUND_ID, task_id=41, **overrides)


def test_v2_record_signs_its_round_and_task_golden() -> None:
    record = make_v2()
    assert record.version == 2
    assert record.signed_bytes().startswith(GOLDEN_V2_PREFIX + NONCE)
    assert record.signature == GOLDEN_V2_SIGNATURE
    verify_record(record, LANDMARK.public_key(), CHIP.public_key())


def test_v2_json_round_trip_names_round_and_task() -> None:
    record = make_v2()
    obj = json.loads(json.dumps(record.to_json()))
    assert (obj["round_id"], obj["task_id"]) == (ROUND_ID, 41)
    assert tuple(obj) == record.json_fields()
    assert MeasurementRecord.from_json(obj) == record


def test_v1_record_still_parses_and_verifies_byte_for_byte() -> None:
    record = make_record()
    obj = record.to_json()
    assert "round_id" not in obj and "task_id" not in obj
    again = MeasurementRecord.from_json(obj)
    assert again == record and again.version == 1
    assert again.signature == GOLDEN_RECORD_SIGNATURE
    verify_record(again, LANDMARK.public_key(), CHIP.public_key())


@pytest.mark.parametrize("change", [{"task_id": 42}, {"round_id": "c-other"},
                                    {"task_id": NO_TASK_ID}])
def test_rebinding_a_v2_record_to_another_task_breaks_its_signature(
        change: dict[str, object]) -> None:
    record = dataclasses.replace(make_v2(), **change)  # type: ignore[arg-type]
    with pytest.raises(SignatureError):
        verify_record(record, LANDMARK.public_key(), CHIP.public_key())


def test_stripping_the_task_from_v2_json_breaks_its_signature() -> None:
    """Dropping round_id/task_id reads the record as version 1, whose bytes differ."""
    obj = make_v2().to_json()
    del obj["round_id"], obj["task_id"]
    downgraded = MeasurementRecord.from_json(obj)
    assert downgraded.version == 1
    with pytest.raises(SignatureError):
        verify_record(downgraded, LANDMARK.public_key(), CHIP.public_key())


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"task_id": 41}, "'round_id' must be a string"),
        ({"round_id": ROUND_ID}, "'task_id' must be an integer"),
        ({"round_id": ROUND_ID, "task_id": -1}, "task_id out of range"),
        ({"round_id": ROUND_ID, "task_id": 1 << 64}, "task_id out of range"),
        ({"round_id": ROUND_ID, "task_id": True}, "'task_id' must be an integer"),
        ({"round_id": "", "task_id": 1}, "invalid round id"),
        ({"round_id": "a b", "task_id": 1}, "invalid round id"),
    ],
)
def test_malformed_v2_fields(patch: dict[str, object], message: str) -> None:
    with pytest.raises(WireError, match=message):
        MeasurementRecord.from_json({**make_record().to_json(), **patch})


def test_a_v1_record_cannot_carry_unsigned_task_fields() -> None:
    with pytest.raises(WireError, match="names no round or task"):
        dataclasses.replace(make_record(), task_id=41)
    with pytest.raises(WireError, match="version must be 1 or 2"):
        dataclasses.replace(make_v2(), version=3)
