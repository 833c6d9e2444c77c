"""The shared key rule: what a revocation names, when it is in force, certificate windows."""

from __future__ import annotations

import base64

import pytest

from protocol.errors import WireError
from protocol.revocation import Revocation, RevocationIndex, revoked_by, valid_at

KEY_A, KEY_B = bytes(32), bytes(range(32))
B64_A = base64.b64encode(KEY_A).decode()


def test_id_key_and_serial_name_what_they_say() -> None:
    by_id = Revocation("landmark", "id", "FRA", 10, "leak")
    by_key = Revocation("landmark", "public_key", B64_A, 10, "rotated")
    by_serial = Revocation("chip", "serial", "S-1", 10, "stolen")
    assert by_id.covers("landmark", "FRA", KEY_B) and not by_id.covers("chip", "FRA", KEY_B)
    assert by_key.covers("landmark", "BER", KEY_A) and not by_key.covers("landmark", "BER", KEY_B)
    assert by_serial.covers("chip", "c9", KEY_B, "S-1")
    assert not by_serial.covers("chip", "c9", KEY_B, None)


def test_in_force_from_its_time_on() -> None:
    rules = [Revocation("chip", "id", "c1", 100, "r")]
    assert revoked_by(rules, kind="chip", subject_id="c1", public_key=KEY_A,
                      as_of_unix_ns=99) is None
    assert revoked_by(rules, kind="chip", subject_id="c1", public_key=KEY_A,
                      as_of_unix_ns=100) == rules[0]


@pytest.mark.parametrize(("obj", "message"), [
    ({"kind": "gpu", "match": "id", "value": "x", "revoked_unix_ns": 1}, "kind"),
    ({"kind": "chip", "match": "name", "value": "x", "revoked_unix_ns": 1}, "match"),
    ({"kind": "landmark", "match": "serial", "value": "x", "revoked_unix_ns": 1}, "serial"),
    ({"kind": "chip", "match": "public_key", "value": "AAAA", "revoked_unix_ns": 1}, "32"),
    ({"kind": "chip", "match": "id", "value": "", "revoked_unix_ns": 1}, "value"),
    ({"kind": "chip", "match": "id", "value": "x", "revoked_unix_ns": True}, "integer"),
    ({"kind": "chip", "match": "id", "value": "x"}, "revoked_unix_ns"),
    ([], "object"),
])
def test_malformed_revocations_are_refused(obj: object, message: str) -> None:
    with pytest.raises(WireError, match=message):
        Revocation.from_json(obj)


def test_window_ends_are_whole_seconds_like_certificate_verify() -> None:
    assert valid_at(10, 20, 10 * 10**9) and valid_at(10, 20, 21 * 10**9 - 1)
    assert not valid_at(10, 20, 10 * 10**9 - 1) and not valid_at(10, 20, 21 * 10**9)


def test_json_round_trip() -> None:
    rule = Revocation("landmark", "public_key", B64_A, 5, "why")
    assert Revocation.from_json(rule.to_json()) == rule


def test_index_gives_the_same_answers_as_the_list() -> None:
    rules = [Revocation("landmark", "id", "FRA", 10, "leak"),
             Revocation("landmark", "public_key", B64_A, 20, "rotated"),
             Revocation("chip", "serial", "S-1", 30, "stolen"),
             Revocation("chip", "id", "c1", 40, "sold")]
    index = RevocationIndex(rules)
    for kind, subject_id, key, serial in [("landmark", "FRA", KEY_B, None),
                                          ("landmark", "BER", KEY_A, None),
                                          ("landmark", "BER", KEY_B, None),
                                          ("chip", "c9", KEY_B, "S-1"), ("chip", "c1", KEY_A, "x"),
                                          ("chip", "FRA", KEY_A, None)]:
        for as_of in (0, 10, 25, 35, 50):
            assert index.find(kind=kind, subject_id=subject_id, public_key=key, serial=serial,
                              as_of_unix_ns=as_of) == revoked_by(
                rules, kind=kind, subject_id=subject_id, public_key=key, serial=serial,
                as_of_unix_ns=as_of), (kind, subject_id, as_of)
    assert sorted(r.value for r in index) == sorted(r.value for r in rules)


def test_the_revocation_benchmark_runs(capsys: pytest.CaptureFixture[str]) -> None:
    import json

    from benchmarks.revocation import main

    assert main(["--sizes", "0", "3", "--repeat", "1"]) == 0
    figures = json.loads(capsys.readouterr().out)
    assert set(figures["check_us_by_revocations"]) == {"0", "3"}
