"""audit.recompute on single entries: what it reports when the rule cannot run, and in what form."""

from __future__ import annotations

from typing import Any

from audit.recompute import recompute_verdict
from audit.report import AuditState
from geo.geodesy import distance_km, vacuum_rtt_ms
from tests.evidence.test_bundle import CHIP_LAT, CHIP_LON, LANDMARKS

# test_bundle's round: a chip in Frankfurt, plausible fibre RTTs to four German landmarks.
ROUND = [
    (landmark_id, lat, lon, vacuum_rtt_ms(distance_km(lat, lon, CHIP_LAT, CHIP_LON)) * 1.6 + 0.2)
    for landmark_id, (lat, lon) in sorted(LANDMARKS.items())
]


def _recompute(entry: dict[str, Any], **kwargs: Any) -> AuditState:
    audit = AuditState()
    recompute_verdict(audit, "entries[0].entry", 5, entry, ROUND, **kwargs)
    return audit


def test_an_unreadable_licence_is_one_finding_and_stops_the_recomputation() -> None:
    """Nothing is checked against a rule that did not run: not even the key minimum."""
    entry: dict[str, Any] = {
        "verdict": "verified", "assessment": None, "licence": {"allowed": ["ZZZ"]},
        "policy": {"min_key_protection": "software"}, "solver": {"params": {}},
    }  # fmt: skip
    audit = _recompute(entry, pinned_min_key="tee-bound")
    assert [(f.check, f.where, f.entry_index) for f in audit.findings] == [
        ("verdict.recompute", "entries[0].entry.solver", 5)
    ]
    assert "UnknownCountryError" in audit.findings[0].message
    assert audit.counts["recomputed_verdicts"] == 0


def test_the_key_rule_finding_names_its_values_as_plain_strings() -> None:
    """A software key under a tee-bound minimum: the rule gives `inconclusive`/`untrusted_key`;
    the findings hold the JSON strings, not the geo enums."""
    entry = {"verdict": "verified", "reason_code": None, "licence": {"allowed": ["DEU"]},
             "policy": {"min_key_protection": "tee-bound"},
             "solver": {"params": {"resolution_km": 10.0}}}
    audit = _recompute(entry, key_level="software")
    findings = {f.check: f for f in audit.findings}
    key_rule, verdict = findings["verdict.key_rule"], findings["verdict.recomputed"]
    assert key_rule.message == (
        "the key rule (software key, minimum tee-bound) gives reason 'untrusted_key'"
    )
    assert type(key_rule.expected) is str and key_rule.expected == "untrusted_key"
    assert type(verdict.expected) is str and verdict.expected == "inconclusive"
    assert audit.counts["recomputed_verdicts"] == 1
