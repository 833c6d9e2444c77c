"""The storage package's one exception base and its typed errors. Both backends raise these
instead of their driver's exceptions, so callers and tests see the same error from either."""

from __future__ import annotations

from collections.abc import Sequence


class StoreError(Exception):
    """Base for errors raised by a `Store`."""


class DuplicateKeyError(StoreError):
    """A write would store a second row under a key that must be unique (a batch id, a nonce,
    a second unresolved alert of one type for one subject). The transaction it ran in is rolled
    back (to its savepoint when nested); nothing of it is stored."""

    def __init__(self, table: str, columns: Sequence[str]) -> None:
        self.table = table
        self.columns = tuple(columns)
        super().__init__(f"{table}: a row with this {', '.join(self.columns)} is already stored")


class ConstraintError(StoreError):
    """A write breaks another rule of the schema (a missing required value)."""
