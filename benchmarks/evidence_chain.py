"""What evidence completeness costs: chained appends, a bundle export and its audit.

    python -m benchmarks.evidence_chain [--entries 1000] [--chips 50] [--postgres]

Appends ``entries`` alert entries (4 kB of padding each, about a verdict's size) spread over
``chips`` chips, plain (no chain) and chained, to two fresh logs in a temporary directory; then
exports one chip's whole chain as a bundle with a signed manifest and audits it. Prints JSON:
mean append time of each kind (synchronous=FULL, so one fsync each: the machine's disk and load
dominate), the export time, the completeness check alone and the whole audit of that bundle.

With ``--postgres`` it also appends ``entries`` chained entries to the log's tables in a
throw-away PostgreSQL database (fsync on), as the verifier does, and reports the wall and CPU
time per append on both engines (``db_append``): the cost the evidence log adds to each verdict
the leader records, to set against the decide tick's CPU per round (benchmarks.fleet).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from audit.completeness import check_completeness
from audit.verify import verify_bundle
from benchmarks.postgres import throwaway_cluster
from protocol.evidence_format import canonical_json
from protocol.keys import SoftwareSigner
from verifier.config import default_config
from verifier.evidence import append_evidence, build_alert_evidence, export_bundle
from verifier.store import open_store
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


def _db_append(log: TransparencyLog, entries: int, chips: int) -> dict[str, float]:
    """Wall and CPU ms per chained append on ``log``'s store (each its own transaction)."""
    wall, cpu = time.perf_counter(), time.process_time()
    _fill(log, entries, chips, chained=True)
    return {"wall_ms": round((time.perf_counter() - wall) / entries * 1e3, 3),
            "cpu_ms": round((time.process_time() - cpu) / entries * 1e3, 3)}


def db_appends(entries: int, chips: int) -> dict[str, Any]:
    """Chained appends on the verifier's store, SQLite (synchronous=NORMAL, the verifier's
    default) and a throw-away PostgreSQL."""
    found: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp, throwaway_cluster() as cluster:
        url = cluster.fresh_url()
        for backend, config in (
                ("sqlite", default_config(data_dir=Path(tmp))),
                ("postgresql", default_config(data_dir=Path(tmp), database_url=url))):
            with TransparencyLog(open_store(config), owns_store=True) as log:
                found[backend] = _db_append(log, entries, chips)
    return found


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
    parser.add_argument("--postgres", action="store_true",
                        help="also append to the log's tables on SQLite and PostgreSQL stores")
    args = parser.parse_args()
    result = run(args.entries, args.chips)
    if args.postgres:
        result["db_append"] = db_appends(args.entries, args.chips)
    result["load_average"] = os.getloadavg()[0]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
