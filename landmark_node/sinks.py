"""Where sealed batches go. `BatchSink.deliver` returns once the batch is durably accepted,
raises `BatchRefusedError` when the receiver refused that batch for good (it is quarantined), and
raises anything else to have it retried later; delivery must be idempotent by batch id."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Protocol

from protocol.records import MeasurementBatch


class BatchSink(Protocol):
    async def deliver(self, batch: MeasurementBatch) -> None: ...


class FileSink:
    """Writes each batch to `<directory>/<batch_id>.json` (atomic rename, fsync). A batch id that
    is already there is not written again, so redelivery after a crash is harmless."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    async def deliver(self, batch: MeasurementBatch) -> None:
        await asyncio.to_thread(self._write, batch)

    def _write(self, batch: MeasurementBatch) -> None:
        final = self.directory / f"{batch.batch_id}.json"
        if final.exists():
            return
        tmp = self.directory / f".{batch.batch_id}.tmp"
        with tmp.open("w", encoding="utf-8") as handle:
            json.dump(batch.to_json(), handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, final)
        dir_fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
