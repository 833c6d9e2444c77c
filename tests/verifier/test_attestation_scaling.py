"""The leader's periodic GPU overdue check reads what fell due, not every enrolled GPU.

Counted in SQLite virtual-machine instructions (deterministic for the same data, unlike time):
one `attestation.raise_overdue` pass over a fleet where the same 5 GPUs fell silent costs about
as much with 3,000 enrolled GPUs as with 300, and a second pass, with nothing new overdue, costs
almost nothing. Until migration 7 the pass read every binding from the key-value table and
raised (or re-found) an alert for every overdue GPU, every minute: ten times the GPUs, ten times
the reads.
"""

from __future__ import annotations

import time
from pathlib import Path

from protocol.gpu_attestation import GpuAttestation
from tests.verifier.sqlite_steps import STEPS_PER_CALL, counting_steps
from verifier import attestation
from verifier.alerts import Alerts
from verifier.evidence_sink import EvidenceSink
from verifier.hub import Hub
from verifier.metrics import Metrics
from verifier.model import AlertFilter
from verifier.store import SqliteStore

_NS = 1_000_000_000
_MAX_AGE_S = 86_400.0
_SILENT = 5  # GPUs past the age limit in every fleet


def _bind(store: SqliteStore, alerts: Alerts, chip_id: str, now_unix_ns: int) -> None:
    """Enrol a GPU for the chip as an accepted attestation at `now_unix_ns` does."""
    pending = attestation.PendingAttestation(chip_id, bytes(32), None)
    result = GpuAttestation(gpu_id=f"GPU-{chip_id}", chain_fingerprints=("ab" * 32,),
                            driver_version="550.90.07", vbios_version=None, project="2331",
                            measurement_count=1)
    attestation.record_success(store, alerts, pending, result, now_unix_ns=now_unix_ns)


def _passes(path: Path, gpus: int) -> tuple[int, int, int]:
    """(instructions of a first and of a second overdue pass, in tens; alerts open after both)
    with `gpus` enrolled GPUs of which `_SILENT` are past the age limit."""
    store = SqliteStore(path)
    alerts = Alerts(webhook_urls=(), hub=Hub(), metrics=Metrics(),
                    evidence=EvidenceSink(None, b""))
    now = time.time_ns()

    def one_pass() -> int:
        with counting_steps(store) as steps:
            attestation.raise_overdue(store, alerts, max_age_s=_MAX_AGE_S, now_unix_ns=now)
        return steps.calls

    try:
        for i in range(gpus):
            silent = i % (gpus // _SILENT) == 0
            _bind(store, alerts, f"chip-{i:07d}",
                  now - int((2 * _MAX_AGE_S if silent else 60) * _NS))
        first, second = one_pass(), one_pass()
        opened = store.alerts(AlertFilter(type="gpu_attestation_overdue"))
    finally:
        store.close()
    return first, second, len(opened)


def test_an_overdue_pass_costs_the_same_with_ten_times_the_gpus(tmp_path: Path) -> None:
    gpus = 300
    small_first, small_second, small_alerts = _passes(tmp_path / "small.sqlite3", gpus)
    large_first, large_second, large_alerts = _passes(tmp_path / "large.sqlite3", gpus * 10)
    assert small_alerts == large_alerts == _SILENT  # the same work done in both
    assert large_first <= small_first * 1.2, (
        f"the first pass ran {large_first * STEPS_PER_CALL} SQLite instructions with "
        f"{gpus * 10} GPUs against {small_first * STEPS_PER_CALL} with {gpus}: it reads "
        "every binding")
    # Nothing fell due since: the second pass reads an empty range of the index.
    assert large_second <= small_second + 10 and large_second * 20 <= large_first, (
        f"a pass with nothing newly overdue ran {large_second * STEPS_PER_CALL} SQLite "
        f"instructions with {gpus * 10} GPUs ({small_second * STEPS_PER_CALL} with {gpus})")
