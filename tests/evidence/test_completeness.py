"""Evidence completeness: a chip's entries form a hash chain and a bundle's signed manifest vouches
for both ends, so the offline audit names any entry removed, reordered, repeated or cut off.

The attack (issue 12, item 3): drop the `outside_licensed_region` alert (or the violation itself)
from a bundle before handing it to an auditor. Before chaining, the audit said `ok`."""

from __future__ import annotations

import base64
import copy
import itertools
import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from audit.verify import verify_bundle
from geo.assess import assess
from geo.licence import licence_from_json
from protocol.evidence_format import canonical_json
from protocol.keys import SoftwareSigner
from protocol.merkle import MemoryTree, leaf_hash
from tests.evidence.test_bundle import CHIP_ID, LANDMARKS, T0_S, _round
from tests.pki import Pki
from verifier.evidence import (
    append_evidence,
    build_alert_evidence,
    build_evidence,
    export_bundle,
)
from verifier.translog import TransparencyLog

NS = 10**9
POLAND_ONLY = {"allowed": ["POL"], "prohibited": [], "tolerance_km": 0.0}  # chip is in Frankfurt


def _alert(kind: str, alert_id: int, chip_id: str = CHIP_ID) -> dict[str, Any]:
    return {"alert_id": alert_id, "type": kind, "subject_id": chip_id, "message": kind}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Two violation verdicts, each followed by its alert, with another chip's entries between."""
    tmp = tmp_path_factory.mktemp("completeness")
    pki = Pki(valid_unix_s=(T0_S - 86_400, T0_S + 86_400 * 365))
    log_key = SoftwareSigner.generate()
    chip_cert = pki.chip_certificate(CHIP_ID, serial="S1")
    landmark_certs = [
        pki.landmark_certificate(lm, lat, lon) for lm, (lat, lon) in LANDMARKS.items()
    ]
    ca, chip, landmark_keys = pki.ca, pki.chip_keys[CHIP_ID], pki.landmark_keys
    log = TransparencyLog(tmp / "verifier.sqlite3")
    for round_no in range(2):
        start_ns = (T0_S + 60 * round_no) * NS
        r = _round(ca, chip, landmark_keys, start_ns, round_no)
        assessment = assess(r["inputs"], licence_from_json(POLAND_ONLY), None, r["params"])
        assert assessment.verdict is not None and assessment.verdict.value == "violation"
        append_evidence(log, build_evidence(
            chip_id=CHIP_ID, round_id=f"r{round_no}", decided_unix_ns=r["decided_unix_ns"],
            verdict="violation", chip_certificate=chip_cert,
            landmark_certificates=[c.to_json() for c in landmark_certs], records=r["records"],
            inputs=r["inputs"], licence=POLAND_ONLY, params=r["params"], calibration=None,
            assessment=assessment, policy={"name": "default"}, ca_public_key=ca.public_key(),
        ))  # fmt: skip
        append_evidence(log, build_alert_evidence(
            _alert("outside_licensed_region", round_no), chip_id="chip-other",
            time_unix_ns=r["decided_unix_ns"],
        ))  # fmt: skip
        append_evidence(log, build_alert_evidence(
            _alert("outside_licensed_region", 10 + round_no), chip_id=CHIP_ID,
            time_unix_ns=r["decided_unix_ns"],
        ))  # fmt: skip
        log.sign_tree_head(log_key, T0_S + 60 * round_no + 2)
    bundle = export_bundle(
        log, CHIP_ID, 0, (T0_S + 1000) * NS, signer=log_key, sign_fresh_head=True,
        now_unix_s=T0_S + 300,
    )  # fmt: skip
    middle = export_bundle(log, CHIP_ID, 0, (T0_S + 30) * NS, signer=log_key)
    log.close()
    return {"bundle": bundle, "middle": middle, "ca": ca.public_key(),
            "log_key": log_key.public_key()}  # fmt: skip


def _findings(bundle: dict[str, Any], world: dict[str, Any]) -> set[tuple[str, str]]:
    report = verify_bundle(bundle, ca_public_key=world["ca"], log_public_key=world["log_key"])
    return {(f.check, f.where) for f in report.findings}


def test_an_honest_bundle_is_one_complete_chain(world: dict[str, Any]) -> None:
    bundle = world["bundle"]
    assert [e["entry"]["chip_seq"] for e in bundle["entries"]] == [0, 1, 2, 3]
    entries = [e["entry"] for e in bundle["entries"]]
    assert entries[0]["chip_prev_leaf_hash_b64"] is None
    for before, after in itertools.pairwise(entries):
        assert after["chip_prev_leaf_hash_b64"] == _b64_leaf(before)
    manifest = bundle["manifest"]
    assert (manifest["first_seq"], manifest["last_seq"], manifest["head_seq"]) == (0, 3, 3)
    report = verify_bundle(bundle, ca_public_key=world["ca"], log_public_key=world["log_key"])
    assert report.findings == (), report.findings
    assert report.counts["recomputed_verdicts"] == 2


def _b64_leaf(entry: dict[str, Any]) -> str:
    return base64.b64encode(leaf_hash(canonical_json(entry))).decode()


def test_removing_the_outside_licensed_region_alert_is_a_finding(world: dict[str, Any]) -> None:
    """The issue's reproduction: this bundle audited `ok` with 0 findings before."""
    bundle = copy.deepcopy(world["bundle"])
    k = next(i for i, e in enumerate(bundle["entries"])
             if e["entry"].get("alert", {}).get("type") == "outside_licensed_region")  # fmt: skip
    del bundle["entries"][k]
    report = verify_bundle(bundle, ca_public_key=world["ca"], log_public_key=world["log_key"])
    assert not report.ok
    gap = next(f for f in report.findings if f.check == "chain.gap")
    assert gap.found == "missing 1"
    assert ("manifest.binding", "manifest.entry_count") in _findings(bundle, world)


def _drop(k: int) -> Any:
    def change(entries: list[Any]) -> None:
        del entries[k]

    return change


def _swap(entries: list[Any]) -> None:
    entries[1], entries[2] = entries[2], entries[1]


def _repeat(entries: list[Any]) -> None:
    entries.insert(2, copy.deepcopy(entries[1]))


EDITS = {  # how the entries are edited -> a finding that must name it
    "first removed": (_drop(0), ("chain.truncated", "manifest.first_seq")),
    "last removed": (_drop(-1), ("chain.truncated", "manifest.last_seq")),
    "middle removed": (_drop(2), ("chain.gap", "entries")),
    "reordered": (_swap, ("chain.order", "entries[2].entry.chip_seq")),
    "duplicated": (_repeat, ("chain.duplicate", "entries[2].entry.chip_seq")),
}


@pytest.mark.parametrize("case", sorted(EDITS))
def test_every_omission_reordering_and_repeat_is_named(world: dict[str, Any], case: str) -> None:
    change, expected = EDITS[case]
    bundle = copy.deepcopy(world["bundle"])
    change(bundle["entries"])
    assert expected in _findings(bundle, world)


def test_the_manifest_cannot_be_edited_or_dropped(world: dict[str, Any]) -> None:
    bundle = copy.deepcopy(world["bundle"])
    del bundle["entries"][-1]
    bundle["manifest"]["last_seq"] -= 1  # hide the cut
    bundle["manifest"]["entry_count"] -= 1
    assert ("manifest.signature", "manifest.signature_b64") in _findings(bundle, world)
    del bundle["manifest"]
    assert ("manifest.missing", "manifest") in _findings(bundle, world)
    old = copy.deepcopy(world["bundle"])
    old["format"] = "lightfence-evidence-bundle/1"
    del old["manifest"]
    assert ("manifest.missing", "manifest") in _findings(old, world)


def test_a_time_range_is_a_contiguous_run_and_cutting_its_end_is_caught(
    world: dict[str, Any],
) -> None:
    middle = copy.deepcopy(world["middle"])
    assert [e["entry"]["chip_seq"] for e in middle["entries"]] == [0, 1]
    assert (middle["manifest"]["last_seq"], middle["manifest"]["head_seq"]) == (1, 3)
    assert _findings(middle, world) == set()
    del middle["entries"][-1]
    assert ("chain.truncated", "manifest.last_seq") in _findings(middle, world)


# The translog_entries table as logs written before per-chip sequence numbers have it.
_OLD_ENTRIES_TABLE = """
CREATE TABLE translog_entries (
    idx INTEGER PRIMARY KEY, leaf_hash BLOB NOT NULL, entry BLOB NOT NULL, kind TEXT NOT NULL,
    chip_id TEXT, time_unix_ns INTEGER
);
"""


def test_a_log_from_before_chaining_stays_readable_and_its_old_entries_counted(
    tmp_path: Path,
) -> None:
    path = tmp_path / "verifier.sqlite3"
    old = build_alert_evidence(_alert("went_dark", 1), chip_id=CHIP_ID, time_unix_ns=5 * NS)
    db = sqlite3.connect(path)
    db.executescript(_OLD_ENTRIES_TABLE)
    db.execute(
        "INSERT INTO translog_entries VALUES (0, ?, ?, 'alert', ?, ?)",
        (leaf_hash(old.canonical_bytes()), old.canonical_bytes(), CHIP_ID, 5 * NS),
    )
    db.commit()
    db.close()
    key = SoftwareSigner.generate()
    with TransparencyLog(path) as log:
        assert log.root() == MemoryTree([leaf_hash(old.canonical_bytes())]).root()
        for i in range(2):
            alert = _alert("went_dark", 2 + i)
            append_evidence(
                log, build_alert_evidence(alert, chip_id=CHIP_ID, time_unix_ns=(6 + i) * NS)
            )
        bundle = export_bundle(
            log, CHIP_ID, 0, 10 * NS, signer=key, sign_fresh_head=True, now_unix_s=20
        )
    assert [e["entry"].get("chip_seq") for e in bundle["entries"]] == [None, 0, 1]
    assert bundle["manifest"]["unchained_entries"] == 1
    report = verify_bundle(bundle, log_public_key=key.public_key())
    assert report.ok, report.findings
    assert any("predate per-chip sequence numbers" in n for n in report.notes)
    del bundle["entries"][0]
    report = verify_bundle(bundle, log_public_key=key.public_key())
    assert ("chain.truncated", "entries") in {(f.check, f.where) for f in report.findings}


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    chips=st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=12),
    victim=st.integers(min_value=0),
)
def test_any_single_removal_from_any_chain_is_named(
    tmp_path: Path, chips: list[str], victim: int
) -> None:
    """Whatever the interleaving of chips in the log, each chip's bundle verifies, and removing
    any one of its entries yields a finding."""
    key = SoftwareSigner.generate()
    with TransparencyLog(tmp_path / f"h{abs(hash((tuple(chips), victim)))}.db") as log:
        for i, chip_id in enumerate(chips):
            append_evidence(log, build_alert_evidence(
                _alert("went_dark", i, chip_id), chip_id=chip_id, time_unix_ns=i))  # fmt: skip
        log.sign_tree_head(key, 1)
        bundle = export_bundle(log, chips[0], 0, len(chips), signer=key)
    assert [e["entry"]["chip_seq"] for e in bundle["entries"]] == list(
        range(chips.count(chips[0]))
    )
    assert verify_bundle(bundle, log_public_key=key.public_key()).ok
    del bundle["entries"][victim % len(bundle["entries"])]
    assert not verify_bundle(bundle, log_public_key=key.public_key()).ok


def test_concurrent_writers_never_share_a_number_or_a_predecessor(tmp_path: Path) -> None:
    """Two connections (as the verifier and an export CLI would hold) appending from threads."""
    path = tmp_path / "verifier.sqlite3"
    logs = [TransparencyLog(path), TransparencyLog(path)]

    def write(worker: int) -> None:
        for i in range(10):
            alert = _alert("went_dark", worker * 100 + i)
            append_evidence(logs[worker % 2], build_alert_evidence(
                alert, chip_id=CHIP_ID, time_unix_ns=worker * 100 + i))  # fmt: skip

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    chain = logs[0].find_chain(CHIP_ID, 0, 10**6)
    assert [e.chip_seq for e in chain] == list(range(40))
    for before, after in itertools.pairwise(chain):
        assert json.loads(after.entry)["chip_prev_leaf_hash_b64"] == base64.b64encode(
            leaf_hash(before.entry)
        ).decode()
    for log in logs:
        log.close()


def test_the_chain_benchmark_runs_and_its_bundle_audits_clean() -> None:
    from benchmarks.evidence_chain import run

    figures = run(entries=12, chips=3)
    assert figures["bundle_entries"] == 4 and figures["audit_ok"]
