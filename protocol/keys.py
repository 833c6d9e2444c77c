"""Ed25519 keys: the `Signer` interface, the in-memory software signer, signature checks.

The key files themselves (their format, 0600 creation, loading) are I/O: `keystore.key_files`.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import nacl.bindings
import nacl.exceptions
import nacl.signing

from protocol.errors import KeyFileError, SignatureError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32


@runtime_checkable
class Signer(Protocol):
    """Something that signs with a private key it never reveals (a chip's root of trust)."""

    def public_key(self) -> bytes:
        """The 32-byte Ed25519 public key."""
        ...

    def sign(self, message: bytes) -> bytes:
        """A 64-byte Ed25519 signature over `message`."""
        ...


class SoftwareSigner:
    """A `Signer` holding the seed in process memory: the stand-in for a hardware key."""

    __slots__ = ("_key", "_public_key")

    def __init__(self, seed: bytes) -> None:
        if len(seed) != SEED_BYTES:
            raise KeyFileError(f"an Ed25519 seed is {SEED_BYTES} bytes, got {len(seed)}")
        self._key = nacl.signing.SigningKey(seed)
        self._public_key = bytes(self._key.verify_key)

    @classmethod
    def generate(cls) -> SoftwareSigner:
        return cls(bytes(nacl.signing.SigningKey.generate()))

    @property
    def seed(self) -> bytes:
        return bytes(self._key)

    def public_key(self) -> bytes:
        return self._public_key

    def sign(self, message: bytes) -> bytes:
        return bytes(self._key.sign(message).signature)


def verify_signature(public_key: bytes, message: bytes, signature: bytes) -> None:
    """Return if `signature` is a valid Ed25519 signature by `public_key`; else SignatureError."""
    if len(public_key) != PUBLIC_KEY_BYTES:
        raise SignatureError(f"public key must be {PUBLIC_KEY_BYTES} bytes, got {len(public_key)}")
    if len(signature) != SIGNATURE_BYTES:
        raise SignatureError(f"signature must be {SIGNATURE_BYTES} bytes, got {len(signature)}")
    try:  # what `nacl.signing.VerifyKey(public_key).verify` runs, after the same checks
        nacl.bindings.crypto_sign_open(signature + message, public_key)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError) as exc:
        raise SignatureError("signature does not verify") from exc

