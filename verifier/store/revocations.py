"""The revocation tables of a `Store`: revocations and token limits (expiry, disable).
SQL both engines run."""

from __future__ import annotations

from typing import Any

from protocol.revocation import Revocation
from verifier.store.interface import TokenInfo
from verifier.store.sql import SqlBase


class RevocationTables(SqlBase):
    """The `RevocationStore` methods (each one statement, so one transaction)."""

    def add_revocation(self, revocation: Revocation, by: str) -> bool:
        """Record a revocation; False when the same (kind, match, value) was revoked before
        (the first revocation, and its time, stand)."""
        cur = self._db.execute(
            "INSERT INTO revocations(kind, match, value, reason, revoked_by,"
            " revoked_unix_ns) VALUES (?,?,?,?,?,?) ON CONFLICT DO NOTHING",
            (revocation.kind, revocation.match, revocation.value, revocation.reason, by,
             revocation.revoked_unix_ns))
        return cur.rowcount == 1

    def revocations(self) -> list[Revocation]:
        return [Revocation(r[0], r[1], r[2], r[3], r[4]) for r in self._db.execute(
            "SELECT kind, match, value, revoked_unix_ns, reason FROM revocations"
            " ORDER BY revocation_id").fetchall()]

    def set_token_expiry(self, token_id: int, expires_unix_ns: int | None) -> None:
        self._db.execute(
            "INSERT INTO token_limits(token_id, expires_unix_ns) VALUES (?,?)"
            " ON CONFLICT(token_id) DO UPDATE SET expires_unix_ns = excluded.expires_unix_ns",
            (token_id, expires_unix_ns))

    def disable_token(self, token_id: int, *, by: str, reason: str, now_unix_ns: int) -> None:
        """Disable for good; disabling twice keeps the first time, who and why."""
        self._db.execute(
            "INSERT INTO token_limits(token_id, disabled_unix_ns, disabled_by, disabled_reason)"
            " VALUES (?,?,?,?) ON CONFLICT(token_id) DO UPDATE SET"
            " disabled_unix_ns = COALESCE(token_limits.disabled_unix_ns,"
            " excluded.disabled_unix_ns),"
            " disabled_by = COALESCE(token_limits.disabled_by, excluded.disabled_by),"
            " disabled_reason = COALESCE(token_limits.disabled_reason,"
            " excluded.disabled_reason)",
            (token_id, now_unix_ns, by, reason))

    def token_info(self, token_id: int) -> TokenInfo | None:
        rows = self._token_rows("WHERE t.token_id = ?", (token_id,))
        return rows[0] if rows else None

    def token_info_by_hash(self, token_sha256: bytes) -> TokenInfo | None:
        """A token and its limits by the token's hash, in one query (every authenticated
        request)."""
        rows = self._token_rows("WHERE t.token_sha256 = ?", (token_sha256,))
        return rows[0] if rows else None

    def token_infos(self) -> list[TokenInfo]:
        return self._token_rows("", ())

    def _token_rows(self, where: str, args: tuple[Any, ...]) -> list[TokenInfo]:
        return [TokenInfo(*r) for r in self._db.execute(
            "SELECT t.token_id, t.role, t.label, t.landmark_id, t.created_unix_ns,"
            " l.expires_unix_ns, l.disabled_unix_ns, l.disabled_by, l.disabled_reason"
            f" FROM tokens t LEFT JOIN token_limits l ON l.token_id = t.token_id {where}"
            " ORDER BY t.token_id", args).fetchall()]
