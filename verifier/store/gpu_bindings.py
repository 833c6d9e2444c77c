"""Enrolled GPUs (`verifier.attestation`): one row per chip whose GPU is bound to it, with the
time it last attested and whether its `gpu_attestation_overdue` alert has been raised.

The leader's periodic overdue check reads, through a partial index on the last attestation
time, only the bindings past the age limit whose alert is not raised yet: its cost follows what
fell due, not the number of GPUs. SQL both engines run.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from verifier.store.schema import GPU_BINDINGS_VERSION
from verifier.store.sql import Connection, SqlBase

# Where `verifier.attestation` kept each binding, as JSON, before migration 7.
KV_PREFIX = "gpu_attestation:"
_COLUMNS = ("chip_id", "gpu_id", "enrolled_unix_ns", "last_attested_unix_ns", "driver_version",
            "project", "chain_sha256")
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM gpu_bindings"
_CHUNK = 500  # chip ids per statement


@dataclass(frozen=True, slots=True)
class GpuBinding:
    """A chip's enrolled GPU and its latest accepted attestation."""

    chip_id: str
    gpu_id: str
    enrolled_unix_ns: int
    last_attested_unix_ns: int
    driver_version: str | None
    project: str | None
    chain_sha256: tuple[str, ...]  # SHA-256 of each certificate of the chain, leaf first

    def to_json(self) -> dict[str, Any]:
        return {"chip_id": self.chip_id, "gpu_id": self.gpu_id,
                "enrolled_unix_ns": self.enrolled_unix_ns,
                "last_attested_unix_ns": self.last_attested_unix_ns,
                "driver_version": self.driver_version, "project": self.project,
                "chain_sha256": list(self.chain_sha256)}


class GpuBindingStore(Protocol):
    def gpu_binding(self, chip_id: str) -> GpuBinding | None: ...
    def put_gpu_binding(self, binding: GpuBinding) -> None: ...
    def overdue_gpu_bindings(self, attested_before_unix_ns: int,
                             limit: int) -> list[GpuBinding]: ...
    def mark_gpu_overdue_alerted(self, chip_ids: Sequence[str]) -> None: ...


def _binding(row: Any) -> GpuBinding:
    return GpuBinding(str(row[0]), str(row[1]), int(row[2]), int(row[3]), row[4], row[5],
                      tuple(json.loads(row[6])))


def _values(binding: GpuBinding) -> tuple[object, ...]:
    return (binding.chip_id, binding.gpu_id, binding.enrolled_unix_ns,
            binding.last_attested_unix_ns, binding.driver_version, binding.project,
            json.dumps(list(binding.chain_sha256)))


_UPSERT = (
    f"INSERT INTO gpu_bindings ({', '.join(_COLUMNS)}, overdue_alerted)"
    f" VALUES ({', '.join('?' * len(_COLUMNS))}, 0) ON CONFLICT(chip_id) DO UPDATE SET "
    + ", ".join(f"{c}=excluded.{c}" for c in _COLUMNS[1:]) + ", overdue_alerted=0")


def move_kv_bindings(db: Connection) -> int:
    """Migration 7's data step: move the `gpu_attestation:<chip>` kv rows into `gpu_bindings`
    (in the migration's transaction); how many moved. Their JSON is parsed here because the two
    engines' SQL JSON functions differ."""
    found = db.execute("SELECT key, value FROM kv WHERE substr(key, 1, ?) = ?",
                       (len(KV_PREFIX), KV_PREFIX)).fetchall()
    moved = []
    for key, raw in ((str(r[0]), str(r[1])) for r in found):
        state = json.loads(raw)
        moved.append(_values(GpuBinding(
            key[len(KV_PREFIX):], str(state["gpu_id"]), int(state["enrolled_unix_ns"]),
            int(state["last_attested_unix_ns"]), state.get("driver_version"),
            state.get("project"), tuple(state.get("chain_sha256", ())))))
    if moved:
        db.executemany(_UPSERT, moved)
        db.execute("DELETE FROM kv WHERE substr(key, 1, ?) = ?", (len(KV_PREFIX), KV_PREFIX))
    return len(moved)


class GpuBindingTables(SqlBase):
    """The `GpuBindingStore` methods (each mutating one a transaction)."""

    def gpu_binding(self, chip_id: str) -> GpuBinding | None:
        row = self._one(f"{_SELECT} WHERE chip_id = ?", (chip_id,))
        return None if row is None else _binding(row)

    def put_gpu_binding(self, binding: GpuBinding) -> None:
        """Insert or replace the chip's binding; a new attestation ends any overdue episode
        (the next silence past the limit is alerted again)."""
        with self._joined():
            self._db.execute(_UPSERT, _values(binding))

    def overdue_gpu_bindings(self, attested_before_unix_ns: int,
                             limit: int) -> list[GpuBinding]:
        """Up to `limit` bindings last attested before the time and not yet alerted as
        overdue, the longest silent first."""
        return [_binding(r) for r in self._all(
            f"{_SELECT} WHERE overdue_alerted = 0 AND last_attested_unix_ns < ?"
            " ORDER BY last_attested_unix_ns LIMIT ?", (attested_before_unix_ns, limit))]

    def mark_gpu_overdue_alerted(self, chip_ids: Sequence[str]) -> None:
        """Leave these bindings out of `overdue_gpu_bindings` until they attest again."""
        unique = sorted(set(chip_ids))
        if not unique:  # the steady state: no transaction, no round trip
            return
        with self._joined():
            for start in range(0, len(unique), _CHUNK):
                chunk = unique[start:start + _CHUNK]
                self._db.execute(
                    "UPDATE gpu_bindings SET overdue_alerted = 1"
                    f" WHERE chip_id IN ({','.join('?' * len(chunk))})", chunk)

    def _after_migration(self, version: int) -> None:
        super()._after_migration(version)
        if version == GPU_BINDINGS_VERSION:
            move_kv_bindings(self._db)
