"""Golden vectors for the evidence format (protocol.evidence_format).

The verifier writes evidence with this module and the offline audit reads it with the same one,
so a change to the canonical form would never show up as a mismatch between them: these fixed
inputs and their exact bytes and hashes are what pins the format. They were produced by the
verifier's own `canonical_json`/`build_evidence` before the format moved to protocol/, and the
moved code reproduces them byte for byte. A failure here means every logged leaf hash changes:
that is a new format version, not a fix.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.errors import ProtocolError
from protocol.evidence_format import (
    ALERT_EVIDENCE_TYPE,
    BUNDLE_FORMAT,
    CHIP_PREV_FIELD,
    CHIP_SEQ_FIELD,
    MANIFEST_CONTEXT,
    READABLE_BUNDLE_FORMATS,
    VERDICT_EVIDENCE_TYPE,
    EvidenceFormatError,
    alert_entry,
    canonical_json,
    chain_link,
    entry_leaf_hash,
    manifest_message,
    verdict_entry,
)

TRICKY_VALUE: dict[str, Any] = {
    "b": [1, 2.5, True, None],
    "a": "\u00e9\u2028<>&\"\\",
    "c": b"\x00\xff\x10",
    "t": (1, 2),
    "f": 1e-07,
    "z": -0.0,
    "big": 2**63,
    "e": {},
    "nested": {"y": 1, "x": [[]]},
}
TRICKY_CANONICAL = (
    b'{"a":"\\u00e9\\u2028<>&\\"\\\\","b":[1,2.5,true,null],"big":9223372036854775808,'
    b'"c":"AP8Q","e":{},"f":1e-07,"nested":{"x":[[]],"y":1},"t":[1,2],"z":-0.0}'
)

ALERT_CANONICAL = (
    b'{"alert":{"alert_id":5,"type":"went_dark"},"chip_id":"chip-1","time_unix_ns":42,'
    b'"type":"lightfence-alert-evidence/1"}'
)
ALERT_LEAF_HASH = "0b041210dd92ecdbaab11e931f63dbca95de146eb0fa3516571e82ad3e50027d"
CHAINED_ALERT_CANONICAL = (
    b'{"alert":{"alert_id":5,"type":"went_dark"},"chip_id":"chip-1",'
    b'"chip_prev_leaf_hash_b64":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=","chip_seq":1,'
    b'"time_unix_ns":42,"type":"lightfence-alert-evidence/1"}'
)
CHAINED_ALERT_LEAF_HASH = "52cbad250aea45beb0eaf22cde62b7b1d6f54446c50163c4087135cc329de398"

MANIFEST = {
    "chip_id": "chip-1", "from_unix_ns": 1, "to_unix_ns": 2, "tree_size": 3, "root_b64": "AAAA",
    "entry_count": 1, "unchained_entries": 0, "first_seq": 0, "last_seq": 0, "head_seq": 0,
    "head_leaf_hash_b64": "BBBB", "signature_b64": "not covered by itself",
}  # fmt: skip
MANIFEST_MESSAGE = (
    b'lightfence-bundle-manifest-v1\x00{"chip_id":"chip-1","entry_count":1,"first_seq":0,'
    b'"from_unix_ns":1,"head_leaf_hash_b64":"BBBB","head_seq":0,"last_seq":0,'
    b'"root_b64":"AAAA","to_unix_ns":2,"tree_size":3,"unchained_entries":0}'
)


@dataclass(frozen=True, slots=True)
class _Rtt:  # the SolverInput shape (geo's LandmarkRtt)
    landmark_id: str
    lat_deg: float
    lon_deg: float
    rtt_ms: float


VERDICT_FIELDS: dict[str, Any] = {
    "chip_id": "chip-1",
    "round_id": "r-7",
    "decided_unix_ns": 1_700_000_000_123_456_789,
    "verdict": "verified",
    "chip_certificate": {"chip_id": "chip-1", "public_key_b64": "AAAA", "serial": "s1"},
    "landmark_certificates": [
        {"landmark_id": "lm-b", "lat_deg": 50.1},
        {"landmark_id": "lm-a", "lat_deg": 52.5},
    ],
    "records": [],
    "inputs": [_Rtt("lm-a", 52.5, 13.4, 3.25), _Rtt("lm-b", 50.1, 8.7, 1.0)],
    "licence": {"allowed": ["DEU"], "prohibited": [], "tolerance_km": 0.0},
    "params": {"speed_km_per_s": 299792.458, "resolution_km": 5.0},
    "solver_version": "0.1.0",
    "calibration": None,
    "assessment": {"verdict": "verified", "area_km2": 1234.5},
    "policy": {"name": "default", "tolerate_faulty_landmarks": 0},
    "ca_public_key": bytes(range(32)),
    "key_protection": "tee-bound",
    "reason_code": None,
    "revocations": [{"kind": "landmark", "subject_id": "lm-x"}],
}
VERDICT_CANONICAL = (
    b'{"assessment":{"area_km2":1234.5,"verdict":"verified"},'
    b'"ca_public_key_b64":"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",'
    b'"chip_certificate":{"chip_id":"chip-1","public_key_b64":"AAAA","serial":"s1"},'
    b'"chip_id":"chip-1","decided_unix_ns":1700000000123456789,'
    b'"inputs":[{"landmark_id":"lm-a","lat_deg":52.5,"lon_deg":13.4,"rtt_ms":3.25},'
    b'{"landmark_id":"lm-b","lat_deg":50.1,"lon_deg":8.7,"rtt_ms":1.0}],'
    b'"key_protection":"tee-bound",'
    b'"landmark_certificates":[{"landmark_id":"lm-a","lat_deg":52.5},'
    b'{"landmark_id":"lm-b","lat_deg":50.1}],'
    b'"licence":{"allowed":["DEU"],"prohibited":[],"tolerance_km":0.0},'
    b'"policy":{"name":"default","tolerate_faulty_landmarks":0},"reason_code":null,'
    b'"records":[],"revocations":[{"kind":"landmark","subject_id":"lm-x"}],"round_id":"r-7",'
    b'"solver":{"calibration":null,"params":{"resolution_km":5.0,"speed_km_per_s":299792.458},'
    b'"version":"0.1.0"},"type":"lightfence-verdict-evidence/1","verdict":"verified"}'
)
VERDICT_SHA256 = "466ebcd7005b0a62cc2622da8c8abc95cb8cb27d066bdd233f6ed332d0cc0f27"


def test_format_names_are_the_published_ones() -> None:
    assert VERDICT_EVIDENCE_TYPE == "lightfence-verdict-evidence/1"
    assert ALERT_EVIDENCE_TYPE == "lightfence-alert-evidence/1"
    assert BUNDLE_FORMAT == "lightfence-evidence-bundle/2"
    assert READABLE_BUNDLE_FORMATS == (BUNDLE_FORMAT, "lightfence-evidence-bundle/1")
    assert (CHIP_SEQ_FIELD, CHIP_PREV_FIELD) == ("chip_seq", "chip_prev_leaf_hash_b64")
    assert MANIFEST_CONTEXT == b"lightfence-bundle-manifest-v1\x00"


def test_canonical_json_golden_bytes() -> None:
    """Sorted keys, no whitespace, ASCII escapes, bytes as base64, tuples as lists, -0.0 kept,
    integers beyond 64 bits exact, floats in Python's shortest repr."""
    assert canonical_json(TRICKY_VALUE) == TRICKY_CANONICAL


def test_alert_entry_golden_bytes_and_leaf_hash() -> None:
    body = alert_entry({"alert_id": 5, "type": "went_dark"}, chip_id="chip-1", time_unix_ns=42)
    assert canonical_json(body) == ALERT_CANONICAL
    assert entry_leaf_hash(body).hex() == ALERT_LEAF_HASH
    # The RFC 9162 leaf hash, computed here independently of protocol.merkle.
    assert hashlib.sha256(b"\x00" + ALERT_CANONICAL).hexdigest() == ALERT_LEAF_HASH


def test_chain_link_golden_bytes() -> None:
    assert chain_link(0, None) == {"chip_seq": 0, "chip_prev_leaf_hash_b64": None}
    body = alert_entry({"alert_id": 5, "type": "went_dark"}, chip_id="chip-1", time_unix_ns=42)
    chained = {**body, **chain_link(1, bytes(range(32)))}
    assert canonical_json(chained) == CHAINED_ALERT_CANONICAL
    assert entry_leaf_hash(chained).hex() == CHAINED_ALERT_LEAF_HASH


def test_verdict_entry_golden_bytes() -> None:
    body = verdict_entry(**VERDICT_FIELDS)
    assert canonical_json(body) == VERDICT_CANONICAL
    assert hashlib.sha256(canonical_json(body)).hexdigest() == VERDICT_SHA256


def test_verdict_entry_does_not_depend_on_landmark_order() -> None:
    reordered = {**VERDICT_FIELDS}
    reordered["landmark_certificates"] = list(reversed(VERDICT_FIELDS["landmark_certificates"]))
    assert canonical_json(verdict_entry(**reordered)) == VERDICT_CANONICAL


def test_manifest_message_golden_bytes_leave_the_signature_out() -> None:
    assert manifest_message(MANIFEST) == MANIFEST_MESSAGE
    assert manifest_message({**MANIFEST, "signature_b64": "another"}) == MANIFEST_MESSAGE
    assert manifest_message({**MANIFEST, "entry_count": 2}) != MANIFEST_MESSAGE


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"x": [1.0, math.nan]}, r"\$\.x\[1\]: nan has no canonical JSON form"),
        ({"x": {"y": math.inf}}, r"\$\.x\.y: inf has no canonical JSON form"),
        ({"x": {1: "a"}}, r"\$\.x: object key 1 is not a string"),
        ({"x": {1, 2}}, r"\$\.x: set is not JSON data"),
    ],
)
def test_values_without_a_canonical_form_are_refused_with_their_path(
    value: Any, message: str
) -> None:
    with pytest.raises(EvidenceFormatError, match=message) as raised:
        canonical_json(value)
    assert isinstance(raised.value, ProtocolError)


def test_a_verdict_entry_with_a_nan_input_is_refused_when_built() -> None:
    fields = {**VERDICT_FIELDS, "inputs": [_Rtt("lm-a", 52.5, 13.4, math.nan)]}
    with pytest.raises(EvidenceFormatError, match=r"\$\.inputs\[0\]\.rtt_ms: nan"):
        verdict_entry(**fields)
    with pytest.raises(EvidenceFormatError, match=r"policy\.floor"):
        verdict_entry(**{**VERDICT_FIELDS, "policy": {"floor": math.nan}})


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text()
    | st.floats(allow_nan=False, allow_infinity=False),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)  # fmt: skip


@given(_JSON)
def test_canonical_json_is_a_fixed_point_of_parsing(value: Any) -> None:
    """Parsing canonical bytes and encoding again gives the same bytes: one form per value."""
    data = canonical_json(value)
    assert data.isascii()
    assert canonical_json(json.loads(data)) == data


@given(st.dictionaries(st.text(max_size=8), st.integers(), max_size=6))
def test_canonical_json_does_not_depend_on_key_order(value: dict[str, int]) -> None:
    assert canonical_json(dict(reversed(list(value.items())))) == canonical_json(value)
