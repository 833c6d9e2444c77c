"""Bearer API tokens: random, shown once, stored only as SHA-256 (they carry 256 bits of entropy,
so a fast hash is enough; no password-style stretching is needed)."""

from __future__ import annotations

import hashlib
import secrets

from verifier.errors import InvalidInputError
from verifier.model import Token
from verifier.revocations import check_token_info
from verifier.roles import ROLES
from verifier.store import Store


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def issue_token(store: Store, *, role: str, label: str, landmark_id: str | None,
                now_unix_ns: int, expires_unix_ns: int | None = None) -> tuple[Token, str]:
    """Create a token; returns its record and the secret (never stored or logged). With
    `expires_unix_ns` the token stops working at that time."""
    if role not in ROLES:
        raise InvalidInputError(f"role must be one of {ROLES}")
    if (role == "landmark") != (landmark_id is not None):
        raise InvalidInputError("a landmark token needs landmark_id; other roles must not have one")
    if expires_unix_ns is not None and expires_unix_ns <= now_unix_ns:
        raise InvalidInputError("expires_unix_ns must be in the future")
    secret = "lf_" + secrets.token_urlsafe(32)
    with store.transaction():
        token_id = store.add_token(hash_token(secret), role, label, landmark_id, now_unix_ns)
        if expires_unix_ns is not None:
            store.set_token_expiry(token_id, expires_unix_ns)
    return Token(token_id, role, label, landmark_id), secret


def authenticate(store: Store, secret: str, now_unix_ns: int) -> Token | None:
    """The token for `secret`; None when unknown, 401 when expired or disabled. One query:
    every authenticated request runs it, an upload on the database thread's queue."""
    info = store.token_info_by_hash(hash_token(secret))
    if info is None:
        return None
    check_token_info(info, now_unix_ns)
    return Token(info.token_id, info.role, info.label, info.landmark_id)
