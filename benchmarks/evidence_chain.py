"""What evidence completeness costs: chained appends, a bundle export and its audit.

    python -m benchmarks.evidence_chain [--entries 1000] [--chips 50]

Appends ``entries`` alert entries (4 kB of padding each, about a verdict's size) spread over
``chips`` chips, plain (no chain) and chained, to two fresh logs in a temporary directory; then
exports one chip's whole chain as a bundle with a signed manifest and audits it. Prints JSON:
mean append time of each kind (synchronous=FULL, so one fsync each: the machine's disk and load
dominate), the export time, the completeness check alone and the whole audit of that bundle.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from audit.completeness import check_completeness
from audit.verify import verify_bundle
from protocol.evidence_format import canonical_json
from protocol.keys import SoftwareSigner
from verifier.evidence import append_evidence, build_alert_evidence, export_bundle
from verifier.translog import TransparencyLog

_PAD = "x" * 4000


def _alert(i: int, chip_id: str) -> dict[str, Any]:
    return {"alert_id": i, "type": "went_dark", "subject_id": chip_id, "pad": _PAD}


def _fill(log: TransparencyLog, entries: int, chips: int, *, chained: bool) -> float:
    """Mean ms per append."""
    start = time.perf_counter()
    for i in range(entries):
        chip_id = f"chip-{i % chips}"
        record = build_alert_evidence(_alert(i, chip_id), chip_id=chip_id, time_unix_ns=i)
        if chained:
            append_evidence(log, record)
        else:
            log.append(canonical_json(record.body), chip_id=chip_id, time_unix_ns=i)
    return (time.perf_counter() - start) / entries * 1e3


def run(entries: int, chips: int) -> dict[str, Any]:
    key = SoftwareSigner.generate()
    with tempfile.TemporaryDirectory() as tmp:
        with TransparencyLog(Path(tmp) / "plain.sqlite3") as plain:
            plain_ms = _fill(plain, entries, chips, chained=False)
        with TransparencyLog(Path(tmp) / "chained.sqlite3") as log:
            chained_ms = _fill(log, entries, chips, chained=True)
            log.sign_tree_head(key, 1)
            start = time.perf_counter()
            bundle = export_bundle(log, "chip-0", 0, entries, signer=key)
            export_s = time.perf_counter() - start
    findings: list[Any] = []
    start = time.perf_counter()
    check_completeness(
        bundle, bundle["entries"], None, key.public_key(),
        fail=lambda *a, **k: findings.append(a), note=lambda _: None,
    )  # fmt: skip
    check_s = time.perf_counter() - start
    start = time.perf_counter()
    report = verify_bundle(bundle, log_public_key=key.public_key())
    audit_s = time.perf_counter() - start
    return {
        "entries": entries,
        "chips": chips,
        "plain_append_ms": round(plain_ms, 3),
        "chained_append_ms": round(chained_ms, 3),
        "bundle_entries": len(bundle["entries"]),
        "export_s": round(export_s, 4),
        "completeness_check_s": round(check_s, 4),
        "audit_s": round(audit_s, 4),
        "audit_ok": report.ok and not findings,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--entries", type=int, default=1000)
    parser.add_argument("--chips", type=int, default=50)
    args = parser.parse_args()
    print(json.dumps(run(args.entries, args.chips)))


if __name__ == "__main__":
    main()
