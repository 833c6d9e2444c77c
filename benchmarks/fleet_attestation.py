"""The leader's GPU overdue check at fleet size: one `attestation.raise_overdue` pass.

    python -m benchmarks.fleet_attestation --gpus 2000 100000 [--silent 10] [--postgres]

For each size: a fresh database gets N enrolled GPUs (bindings written set-based), of which
`--silent` are past `gpu_attestation_max_age_s`. Timed: the first pass (it alerts the silent
ones), then `--passes` more passes with nothing newly overdue (what the leader runs every 60 s
in a steady fleet; the median is reported). Beside them, same run and database, the reference
`full_read_ms`: reading and parsing every binding as the pass did before migration 7 (N JSON
rows of the key-value table, written for the purpose). Times are wall milliseconds and the
client's CPU milliseconds (time.process_time; on PostgreSQL the server's CPU is not in it).
Each size runs on SQLite, and also on PostgreSQL with `--postgres` (a throw-away cluster,
fsync on). Prints one JSON object per run, then a summary per backend comparing the sizes.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.postgres import throwaway_cluster
from verifier import attestation
from verifier.alerts import Alerts
from verifier.config import default_config
from verifier.evidence_sink import EvidenceSink
from verifier.hub import Hub
from verifier.metrics import Metrics
from verifier.store import Store, open_store
from verifier.store.gpu_bindings import KV_PREFIX, GpuBinding

_NS = 1_000_000_000
_MAX_AGE_S = 86_400.0
_WRITE_BATCH = 5_000


def _timed(fn: Callable[[], object]) -> tuple[float, float]:
    """(wall ms, client CPU ms) of one call."""
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return (time.perf_counter() - wall) * 1e3, (time.process_time() - cpu) * 1e3


def _fill(store: Store, gpus: int, silent: int, now_unix_ns: int) -> None:
    """`gpus` bindings, `silent` of them (spread over the fleet) past the age limit, and the
    same bindings as the key-value rows the old pass read."""
    every = max(1, gpus // max(1, silent))
    for start in range(0, gpus, _WRITE_BATCH):
        with store.transaction():
            for i in range(start, min(gpus, start + _WRITE_BATCH)):
                old = i % every == 0 and i // every < silent
                attested = now_unix_ns - int((2 * _MAX_AGE_S if old else 60) * _NS)
                binding = GpuBinding(f"chip-{i:07d}", f"GPU-{i:07d}", attested, attested,
                                     "550.90.07", "2331", ("ab" * 32, "cd" * 32, "ef" * 32))
                store.put_gpu_binding(binding)
                store.put_kv(KV_PREFIX + binding.chip_id, json.dumps(binding.to_json()))


def _full_read(store: Store) -> int:
    """What the pass read before migration 7: every binding's kv row, parsed."""
    return sum(1 for _, raw in store.kv_with_prefix(KV_PREFIX)
               if int(json.loads(raw)["last_attested_unix_ns"]) >= 0)


def run_size(gpus: int, *, silent: int, passes: int, data_dir: Path,
             database_url: str | None) -> dict[str, Any]:
    store = open_store(default_config(data_dir=data_dir, database_url=database_url or ""))
    alerts = Alerts(webhook_urls=(), hub=Hub(), metrics=Metrics(),
                    evidence=EvidenceSink(None, b""))
    now = time.time_ns()
    try:
        _fill(store, gpus, silent, now)
        alerted: list[int] = []

        def one_pass() -> None:
            alerted.append(attestation.raise_overdue(store, alerts, max_age_s=_MAX_AGE_S,
                                                     now_unix_ns=now))

        first = _timed(one_pass)
        steady = [_timed(one_pass) for _ in range(passes)]
        full = [_timed(lambda: _full_read(store)) for _ in range(3)]
    finally:
        store.close()
    return {"backend": "postgresql" if database_url else "sqlite", "gpus": gpus,
            "silent": silent, "alerted_first_pass": alerted[0],
            "alerted_later_passes": sum(alerted[1:]),
            "first_pass_ms": round(first[0], 3), "first_pass_cpu_ms": round(first[1], 3),
            "steady_pass_ms": round(statistics.median(s[0] for s in steady), 3),
            "steady_pass_cpu_ms": round(statistics.median(s[1] for s in steady), 3),
            "full_read_ms": round(statistics.median(f[0] for f in full), 3),
            "full_read_cpu_ms": round(statistics.median(f[1] for f in full), 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--gpus", type=int, nargs="+", default=[2_000, 100_000])
    parser.add_argument("--silent", type=int, default=10)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--postgres", action="store_true",
                        help="also on PostgreSQL (a throw-away cluster, fsync on)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)  # not one line per alert
    results: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        urls: list[str | None] = [None]
        cluster = stack.enter_context(throwaway_cluster()) if args.postgres else None
        for gpus in args.gpus:
            if cluster is not None:
                urls = [None, cluster.fresh_url()]
            for url in urls:
                with tempfile.TemporaryDirectory(prefix="lightfence-gpus-") as tmp:
                    results.append(run_size(gpus, silent=args.silent, passes=args.passes,
                                            data_dir=Path(tmp), database_url=url))
                print(json.dumps(results[-1]), flush=True)
    summary = {}
    for backend in ("sqlite", "postgresql"):
        runs = [r for r in results if r["backend"] == backend]
        if len(runs) >= 2:
            summary[backend] = {key: [r[key] for r in runs] for key in (
                "gpus", "first_pass_ms", "steady_pass_ms", "full_read_ms")}
    if summary:
        print(json.dumps({"summary": summary}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
