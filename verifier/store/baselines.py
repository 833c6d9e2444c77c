"""The learned RTT baselines of a `Store` (verifier.rtt_baseline): one row per chip and
landmark. SQL both engines run."""

from __future__ import annotations

from collections.abc import Sequence

from verifier.model import RttBaseline
from verifier.store.sql import SqlBase

_COLUMNS = ("chip_id", "landmark_id", "lat_deg", "lon_deg", "best_rtt_ms", "rounds",
            "since_unix_ns", "updated_unix_ns")
_ROWS_PER_STATEMENT = 100  # 800 parameters: under SQLite's oldest limit of 999


class BaselineTables(SqlBase):
    """The `BaselineStore` methods (each one transaction)."""

    def rtt_baselines(self, chip_id: str) -> list[RttBaseline]:
        return [RttBaseline(*row) for row in self._all(
            f"SELECT {', '.join(_COLUMNS)} FROM rtt_baselines WHERE chip_id = ?"
            " ORDER BY landmark_id", (chip_id,))]

    def put_rtt_baselines(self, baselines: Sequence[RttBaseline]) -> None:
        """Insert or replace each (chip, landmark) row, all in one transaction (a chip's
        rows in one statement: a verdict's transaction writes them in one round trip)."""
        # The last row of a (chip, landmark) wins, as one statement per row would leave it
        # (PostgreSQL refuses a statement that updates a row twice).
        rows = list({(b.chip_id, b.landmark_id): b for b in baselines}.values())
        with self._joined():
            for start in range(0, len(rows), _ROWS_PER_STATEMENT):
                part = rows[start:start + _ROWS_PER_STATEMENT]
                self._db.execute(
                    f"INSERT INTO rtt_baselines({', '.join(_COLUMNS)}) VALUES "
                    + ", ".join([f"({', '.join('?' * len(_COLUMNS))})"] * len(part))
                    + " ON CONFLICT(chip_id, landmark_id) DO UPDATE SET "
                    + ", ".join(f"{c}=excluded.{c}" for c in _COLUMNS[2:]),
                    [getattr(b, c) for b in part for c in _COLUMNS])

    def reset_rtt_baselines(self, chip_id: str) -> int:
        """Forget what was learned about the chip (it relearns from its next rounds); returns
        how many landmark rows were dropped."""
        with self._tx():
            return self._db.execute("DELETE FROM rtt_baselines WHERE chip_id = ?",
                                    (chip_id,)).rowcount
