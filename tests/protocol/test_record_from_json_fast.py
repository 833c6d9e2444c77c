"""`MeasurementRecord.from_json` passes fields of exactly their JSON types to the constructor
by position (the verifier parses every uploaded record): for any JSON object, it must give
the record, or the WireError with the message, that reading field by field gives (the
reference below is that reading as it was)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from protocol.codec import from_b64
from protocol.errors import WireError
from protocol.keys import SIGNATURE_BYTES
from protocol.records import NO_TASK_ID, MeasurementRecord, _integer, _text
from protocol.wire import NONCE_BYTES
from tests.protocol.test_records import make_record

GOOD = make_record().to_json() | {"round_id": "r-1", "task_id": 7}


def _reference(obj: dict[str, Any]) -> MeasurementRecord:
    version = 2 if "round_id" in obj or "task_id" in obj else 1
    return MeasurementRecord(
        landmark_id=_text(obj, "landmark_id"), target_kind=_text(obj, "target_kind"),
        target_id=_text(obj, "target_id"),
        nonce=from_b64(obj.get("nonce_b64"), "nonce_b64", NONCE_BYTES),
        sent_unix_ns=_integer(obj, "sent_unix_ns"), rtt_ns=_integer(obj, "rtt_ns"),
        clock_source=_text(obj, "clock_source"),
        challenge=from_b64(obj.get("challenge_b64"), "challenge_b64"),
        response=from_b64(obj.get("response_b64"), "response_b64"),
        signature=from_b64(obj.get("signature_b64"), "signature_b64", SIGNATURE_BYTES),
        round_id=_text(obj, "round_id") if version == 2 else "",
        task_id=_integer(obj, "task_id") if version == 2 else NO_TASK_ID, version=version)


def _outcome(parse: Any, obj: dict[str, Any]) -> object:
    try:
        return parse(obj)
    except WireError as exc:
        return str(exc)


class _Text(str):
    pass


_VALUES = st.one_of(st.none(), st.booleans(), st.integers(-2, 2**64 + 1), st.floats(),
                    st.sampled_from(["", "lm-1", "chip", "kernel", "x y", "AAAA", "=="]),
                    st.builds(_Text, st.sampled_from(["lm-1", "chip"])))


@settings(max_examples=400)
@given(changes=st.dictionaries(st.sampled_from(sorted(GOOD)), _VALUES | st.just(None),
                               max_size=3),
       removed=st.sets(st.sampled_from(sorted(GOOD)), max_size=2))
def test_positional_parsing_agrees_with_field_by_field(
        changes: dict[str, Any], removed: set[str]) -> None:
    obj = {k: v for k, v in {**GOOD, **changes}.items() if k not in removed}
    assert _outcome(MeasurementRecord.from_json, obj) == _outcome(_reference, obj)


def test_the_record_round_trips() -> None:
    record = MeasurementRecord.from_json(GOOD)
    assert record.to_json() == GOOD and record == _reference(GOOD)
