"""Set-based writes and reads for fleet-sized work: bulk enrolment, a tick's rounds with their
tasks, many chips' next rounds. One statement per table (SQLite's `executemany`, PostgreSQL's
pipelined `executemany` or COPY), never a round trip per chip. SQL both engines run."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from verifier.model import Chip, Round
from verifier.store import rows
from verifier.store.sql import SqlBase

_ROUND_COLUMNS = ("round_id", "target_kind", "target_id", "started_unix_ns",
                  "deadline_unix_ns")
_TASK_COLUMNS = ("round_id", "landmark_id", "target_kind", "target_id", "host", "port",
                 "issued_unix_ns", "expires_unix_ns")
_CHUNK = 500  # ids per IN (...) list: well under either engine's parameter limit

# An upsert that keeps a re-enrolled chip's state, history and schedule (registry decides the
# row's values; the columns left out of DO UPDATE are the chip's own life so far).
UPSERT_CHIP = (
    "INSERT INTO chips VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) ON CONFLICT(chip_id)"
    " DO UPDATE SET owner=excluded.owner, host=excluded.host, port=excluded.port,"
    " policy=excluded.policy, public_key=excluded.public_key,"
    " certificate=excluded.certificate, licence=excluded.licence,"
    " model=excluded.model, serial=excluded.serial")


def chip_values(chip: Chip) -> tuple[object, ...]:
    """A chip as the row `UPSERT_CHIP` writes (the table's column order)."""
    return (chip.chip_id, chip.owner, chip.model, chip.serial, chip.host, chip.port,
            chip.policy, chip.public_key, json.dumps(chip.certificate),
            json.dumps(chip.licence), chip.state, chip.state_since_unix_ns,
            chip.last_response_unix_ns, chip.registered_unix_ns, chip.next_round_unix_ns)


class FleetTables(SqlBase):
    """The `FleetStore` methods (one mutating method = one transaction)."""

    def put_chips(self, chips: Sequence[Chip]) -> None:
        """Insert or update every chip (as `put_chip` does each), all in one transaction:
        a failure stores none of them."""
        with self._tx():
            if chips:
                self._db.executemany(UPSERT_CHIP, [chip_values(chip) for chip in chips])

    def chips_by_id(self, chip_ids: Sequence[str]) -> list[Chip]:
        """The enrolled chips among these ids, by id (unknown ids are left out)."""
        found: list[Chip] = []
        unique = sorted(set(chip_ids))
        for start in range(0, len(unique), _CHUNK):
            chunk = unique[start:start + _CHUNK]
            found.extend(rows.chip(r) for r in self._all(
                f"SELECT * FROM chips WHERE chip_id IN ({','.join('?' * len(chunk))})", chunk))
        return sorted(found, key=lambda chip: chip.chip_id)

    def set_chips_next_round(self, next_by_chip: Mapping[str, int]) -> None:
        """Set many chips' next round times in one transaction (unknown ids change nothing)."""
        with self._tx():
            if next_by_chip:
                self._db.executemany(
                    "UPDATE chips SET next_round_unix_ns = ? WHERE chip_id = ?",
                    [(next_unix_ns, chip_id) for chip_id, next_unix_ns
                     in sorted(next_by_chip.items())])

    def add_rounds(self, planned: Sequence[tuple[Round, Sequence[tuple[str, str, int]]]]) -> None:
        """Create many rounds, each with one task per (landmark_id, host, port) target address
        (as `add_round` does one), in one transaction: one insert per table (COPY on
        PostgreSQL), whatever the number of rounds."""
        with self._tx():
            self._insert_rows("rounds", _ROUND_COLUMNS, [
                (rnd.round_id, rnd.target_kind, rnd.target_id, rnd.started_unix_ns,
                 rnd.deadline_unix_ns) for rnd, _ in planned])
            self._insert_rows("tasks", _TASK_COLUMNS, [
                (rnd.round_id, landmark_id, rnd.target_kind, rnd.target_id, host, port,
                 rnd.started_unix_ns, rnd.deadline_unix_ns)
                for rnd, tasks in planned for landmark_id, host, port in tasks])
