"""Revocation and expiry: which landmark and chip keys may still vouch for a measurement, and
which API tokens still open the door.

The rule for keys is `protocol.revocation` (shared with the offline audit): a record counts only
when the landmark's and the target's certificates cover its send time and neither key is revoked
at the moment of judging. Ingestion refuses such records (`revoked`, `certificate_validity`),
verdicts ignore any that were stored before a revocation, the scheduler stops planning rounds
for them, and each refusal raises one `key_refused` alert per key. Tokens expire at their
`expires_unix_ns` and can be disabled for good.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from protocol.errors import WireError
from protocol.revocation import (
    REVOCATION_KINDS,
    Revocation,
    RevocationIndex,
    revoked_by,
    valid_at,
)
from verifier.alerts import Alerts
from verifier.errors import InvalidInputError, NotFoundError, UnauthorizedError
from verifier.model import AlertType
from verifier.store import Store, TokenInfo

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KeyInfo:
    """What the key rule needs from a certificate: the key, its window, a chip's serial."""

    public_key: bytes
    not_before_unix_s: int
    not_after_unix_s: int
    serial: str | None


def key_info(public_key: bytes, certificate: dict[str, Any]) -> KeyInfo:
    return KeyInfo(public_key, int(certificate["not_before_unix_s"]),
                   int(certificate["not_after_unix_s"]),
                   str(certificate["serial"]) if "serial" in certificate else None)


def refusal(revocations: RevocationIndex, kind: str, subject_id: str, info: KeyInfo,
            *, sent_unix_ns: int, now_unix_ns: int) -> str | None:
    """`revoked`, `certificate_validity` or None (the key may vouch for this record)."""
    if revocations.find(kind=kind, subject_id=subject_id, public_key=info.public_key,
                        serial=info.serial, as_of_unix_ns=now_unix_ns) is not None:
        return "revoked"
    if not valid_at(info.not_before_unix_s, info.not_after_unix_s, sent_unix_ns):
        return "certificate_validity"
    return None


def concerning(revocations: Iterable[Revocation], keys: Iterable[tuple[str, str, KeyInfo]],
               now_unix_ns: int) -> tuple[Revocation, ...]:
    """The revocations in force now that name any of these (kind, id, key): what a verdict's
    evidence carries so the audit applies the same rule."""
    listed = list(keys)
    return tuple(r for r in revocations if r.revoked_unix_ns <= now_unix_ns and any(
        r.covers(kind, subject_id, info.public_key, info.serial)
        for kind, subject_id, info in listed))


def untrusted_alert(store: Store, alerts: Alerts, *, kind: str, subject_id: str, reason: str,
                    details: dict[str, Any], now_unix_ns: int) -> None:
    what = ("is revoked" if reason == "revoked"
            else "signed outside its certificate's validity")
    alerts.raise_alert(store, AlertType.KEY_REFUSED, subject_kind=kind, subject_id=subject_id,
                       message=f"{kind} {subject_id}: a measurement its key {what} was ignored",
                       details={"reason": reason, **details}, now_unix_ns=now_unix_ns)


def revoke(store: Store, *, kind: str, match: str, value: str, reason: str, by: str,
           now_unix_ns: int) -> Revocation:
    """Revoke from now on; revoking the same thing again returns the first revocation."""
    try:
        revocation = Revocation(kind, match, value, now_unix_ns, reason)
    except WireError as exc:
        raise InvalidInputError(f"invalid revocation: {exc}") from exc
    if store.add_revocation(revocation, by):
        logger.warning("%s %s %s revoked by %s: %s", kind, match, value, by, reason)
        return revocation
    return next(r for r in store.revocations()
                if (r.kind, r.match, r.value) == (kind, match, value))


def check_not_revoked(store: Store, kind: str, subject_id: str, info: KeyInfo,
                      now_unix_ns: int) -> None:
    """Registration refuses a revoked id, key or serial (422)."""
    check_not_revoked_by(store.revocations(), kind, subject_id, info, now_unix_ns)


def check_not_revoked_by(revocations: Iterable[Revocation], kind: str, subject_id: str,
                         info: KeyInfo, now_unix_ns: int) -> None:
    """`check_not_revoked` against revocations read once (a bulk enrolment checks many)."""
    if kind not in REVOCATION_KINDS:
        raise InvalidInputError(f"unknown kind {kind}")
    found = revoked_by(revocations, kind=kind, subject_id=subject_id,
                       public_key=info.public_key, serial=info.serial,
                       as_of_unix_ns=now_unix_ns)
    if found is not None:
        raise InvalidInputError(f"{kind} {subject_id} is revoked ({found.match} "
                                f"{found.value}: {found.reason})")


def trusted_now(revocations: RevocationIndex, kind: str, subject_id: str,
                info: KeyInfo, now_unix_ns: int) -> bool:
    """Whether rounds may be planned with this landmark or for this chip now."""
    return refusal(revocations, kind, subject_id, info, sent_unix_ns=now_unix_ns,
                   now_unix_ns=now_unix_ns) is None


# -- tokens --

def check_token_info(info: TokenInfo, now_unix_ns: int) -> None:
    """401 for an expired or disabled token."""
    if info.disabled_unix_ns is not None:
        raise UnauthorizedError("bearer token disabled")
    if info.expires_unix_ns is not None and now_unix_ns >= info.expires_unix_ns:
        raise UnauthorizedError("bearer token expired")


def disable_token(store: Store, token_id: int, *, by: str, reason: str,
                  now_unix_ns: int) -> TokenInfo:
    if store.token_info(token_id) is None:
        raise NotFoundError(f"no token {token_id}")
    store.disable_token(token_id, by=by, reason=reason, now_unix_ns=now_unix_ns)
    logger.warning("token %d disabled by %s: %s", token_id, by, reason)
    info = store.token_info(token_id)
    assert info is not None
    return info
