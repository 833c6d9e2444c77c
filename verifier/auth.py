"""Bearer API tokens: random, shown once, stored only as SHA-256 (they carry 256 bits of entropy,
so a fast hash is enough; no password-style stretching is needed)."""

from __future__ import annotations

import hashlib
import secrets

from verifier.errors import InvalidInputError
from verifier.model import Token
from verifier.roles import ROLES
from verifier.store import Store


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def issue_token(store: Store, *, role: str, label: str, landmark_id: str | None,
                now_unix_ns: int) -> tuple[Token, str]:
    """Create a token; returns its record and the secret (never stored or logged)."""
    if role not in ROLES:
        raise InvalidInputError(f"role must be one of {ROLES}")
    if (role == "landmark") != (landmark_id is not None):
        raise InvalidInputError("a landmark token needs landmark_id; other roles must not have one")
    secret = "lf_" + secrets.token_urlsafe(32)
    token_id = store.add_token(hash_token(secret), role, label, landmark_id, now_unix_ns)
    return Token(token_id, role, label, landmark_id), secret


def authenticate(store: Store, secret: str) -> Token | None:
    return store.token_by_hash(hash_token(secret))
