"""Ed25519 keys: the `Signer` interface, signature checks, and the one key-file format.

A key file is a small JSON object holding the base64 32-byte seed and, for convenience, the
public key (checked against the seed on load)::

    {"format": "lightfence-ed25519-v1", "seed_b64": "...", "public_key_b64": "..."}

Files are created with mode 0600 and refused when group or others can read them: a private
key that another user could copy is no longer a proof of identity.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Protocol, runtime_checkable

import nacl.exceptions
import nacl.signing

from protocol.codec import from_b64, to_b64
from protocol.errors import KeyFileError, SignatureError, WireError

PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
SEED_BYTES = 32
KEY_FILE_FORMAT = "lightfence-ed25519-v1"


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
    try:
        nacl.signing.VerifyKey(public_key).verify(message, signature)
    except (nacl.exceptions.BadSignatureError, nacl.exceptions.ValueError) as exc:
        raise SignatureError("signature does not verify") from exc


def write_key_file(path: Path, signer: SoftwareSigner) -> None:
    """Write `signer`'s seed to a new file created 0600; an existing file is never overwritten."""
    body = json.dumps(
        {
            "format": KEY_FILE_FORMAT,
            "seed_b64": to_b64(signer.seed),
            "public_key_b64": to_b64(signer.public_key()),
        },
        indent=2,
    )
    try:
        # O_EXCL with mode 0600: the key is never readable by others, not even for an instant.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError as exc:
        raise KeyFileError(f"{path}: already exists; refusing to overwrite a key") from exc
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot create key file: {exc.strerror}") from exc
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(body + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def generate_key_file(path: Path) -> SoftwareSigner:
    """Create a fresh key and write it to `path` (0600)."""
    signer = SoftwareSigner.generate()
    write_key_file(path, signer)
    return signer


def load_signer(path: Path) -> SoftwareSigner:
    """Load a key file; KeyFileError if missing, malformed, or readable by group/others."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise KeyFileError(f"{path}: cannot read key file: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path}: key file is accessible by group or others (mode {stat.S_IMODE(mode):04o}); "
            f"run `chmod 600 {path}`"
        )
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise KeyFileError(f"{path}: not a Lightfence key file: {exc}") from exc
    if not isinstance(obj, dict) or obj.get("format") != KEY_FILE_FORMAT:
        raise KeyFileError(f"{path}: not a Lightfence key file (format must be {KEY_FILE_FORMAT})")
    try:
        seed = from_b64(obj.get("seed_b64"), "seed_b64", SEED_BYTES)
        public_key = from_b64(obj.get("public_key_b64"), "public_key_b64", PUBLIC_KEY_BYTES)
    except WireError as exc:
        raise KeyFileError(f"{path}: {exc}") from exc
    signer = SoftwareSigner(seed)
    if signer.public_key() != public_key:
        raise KeyFileError(f"{path}: public_key_b64 does not match the seed")
    return signer
