"""Revocations and certificate validity: the one rule deciding whether a signing key may vouch
for a measurement, shared by the verifier (ingestion and verdicts) and the offline audit.

A key counts for a record when its certificate's validity window covers the record's send time,
and no revocation of it was in force at the moment of judging (ingestion, or the verdict). A
revocation names a landmark or chip by id (every key it ever had), by public key (that key only:
the id may come back with a new certificate), or a chip by its certificate's serial. Revoking is
final; a revoked key never counts again, even for records sent before the revocation, because a
stolen key can sign any send time it likes.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Self

from protocol.errors import WireError

REVOCATION_KINDS = ("landmark", "chip")
MATCH_FIELDS = ("id", "public_key", "serial")
_NS_PER_S = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Revocation:
    kind: str  # landmark | chip
    match: str  # id | public_key | serial (serial: chips only)
    value: str  # the id, the public key in base64, or the chip certificate's serial
    revoked_unix_ns: int
    reason: str

    def __post_init__(self) -> None:
        if self.kind not in REVOCATION_KINDS:
            raise WireError(f"revocation kind must be one of {REVOCATION_KINDS}")
        if self.match not in MATCH_FIELDS:
            raise WireError(f"revocation match must be one of {MATCH_FIELDS}")
        if self.match == "serial" and self.kind != "chip":
            raise WireError("only chip certificates carry a serial")
        if not self.value or len(self.value) > 200:
            raise WireError("revocation value must be 1..200 characters")
        if self.match == "public_key":
            try:
                if len(base64.b64decode(self.value, validate=True)) != 32:
                    raise WireError("a revoked public key must be 32 bytes (base64)")
            except (binascii.Error, ValueError) as exc:
                raise WireError("a revoked public key must be base64") from exc
        if isinstance(self.revoked_unix_ns, bool) or not isinstance(self.revoked_unix_ns, int):
            raise WireError("revoked_unix_ns must be an integer")

    def covers(self, kind: str, subject_id: str, public_key: bytes,
               serial: str | None = None) -> bool:
        """Whether this revocation names the key `public_key` of `kind` `subject_id`."""
        if kind != self.kind:
            return False
        if self.match == "id":
            return subject_id == self.value
        if self.match == "public_key":
            return base64.b64encode(public_key).decode("ascii") == self.value
        return serial is not None and serial == self.value

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "match": self.match, "value": self.value,
                "revoked_unix_ns": self.revoked_unix_ns, "reason": self.reason}

    @classmethod
    def from_json(cls, obj: Any) -> Self:
        if not isinstance(obj, dict):
            raise WireError("a revocation must be a JSON object")
        try:
            return cls(str(obj["kind"]), str(obj["match"]), str(obj["value"]),
                       obj["revoked_unix_ns"], str(obj.get("reason", "")))
        except KeyError as exc:
            raise WireError(f"revocation lacks {exc.args[0]!r}") from exc


def revoked_by(revocations: Iterable[Revocation], *, kind: str, subject_id: str,
               public_key: bytes, serial: str | None = None,
               as_of_unix_ns: int) -> Revocation | None:
    """The first revocation in force at `as_of_unix_ns` that names this key, else None."""
    for revocation in revocations:
        if (revocation.revoked_unix_ns <= as_of_unix_ns
                and revocation.covers(kind, subject_id, public_key, serial)):
            return revocation
    return None


class RevocationIndex:
    """Revocations by what they name, so a check costs a few dict lookups however long the list
    (ingestion checks two keys per record). Same answers as `revoked_by`."""

    def __init__(self, revocations: Iterable[Revocation]) -> None:
        self._by: dict[tuple[str, str, str], Revocation] = {}
        for revocation in revocations:
            key = (revocation.kind, revocation.match, revocation.value)
            known = self._by.get(key)
            if known is None or revocation.revoked_unix_ns < known.revoked_unix_ns:
                self._by[key] = revocation

    def __iter__(self) -> Iterator[Revocation]:
        return iter(self._by.values())

    def find(self, *, kind: str, subject_id: str, public_key: bytes, serial: str | None = None,
             as_of_unix_ns: int) -> Revocation | None:
        for name in key_names(kind, subject_id, public_key, serial):
            found = self._by.get(name)
            if found is not None and found.revoked_unix_ns <= as_of_unix_ns:
                return found
        return None


def key_names(kind: str, subject_id: str, public_key: bytes,
              serial: str | None = None) -> list[tuple[str, str, str]]:
    """Every (kind, match, value) a revocation of this key could carry, in the order
    `RevocationIndex.find` tries them: an index built from only the revocations with these
    names gives the same answers for this key as one built from all."""
    names = [(kind, "id", subject_id),
             (kind, "public_key", base64.b64encode(public_key).decode("ascii"))]
    if serial is not None:
        names.append((kind, "serial", serial))
    return names


def valid_at(not_before_unix_s: int, not_after_unix_s: int, unix_ns: int) -> bool:
    """Whether a certificate window (whole seconds, both ends included) covers `unix_ns`: the
    same comparison as `protocol.certs` makes at `unix_ns // 1e9`."""
    return not_before_unix_s <= unix_ns // _NS_PER_S <= not_after_unix_s
