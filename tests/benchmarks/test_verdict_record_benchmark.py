"""The per-verdict write benchmark runs end to end (tiny size; its timings are not checked)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from benchmarks.verdict_record import run_backend


def test_the_record_benchmark_writes_one_entry_per_verdict(tmp_path: Path) -> None:
    result = asyncio.run(run_backend(4, 3, data_dir=tmp_path, database_url=None,
                                     database_pid=None))
    assert result["verdicts"] == 4
    assert result["verdicts_in_db"] == result["log_entries"] == 4
    assert result["cpu_ms_mean"] > 0
