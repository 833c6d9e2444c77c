"""The one key-file format: an Ed25519 seed in a small JSON object, created 0600.

A key file holds the base64 32-byte seed and, for convenience, the public key (checked against
the seed on load)::

    {"format": "lightfence-ed25519-v1", "seed_b64": "...", "public_key_b64": "..."}

Files are created with mode 0600 and refused when group or others can read them: a private
key that another user could copy is no longer a proof of identity.
"""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

from protocol.codec import from_b64, to_b64
from protocol.errors import KeyFileError, WireError
from protocol.keys import PUBLIC_KEY_BYTES, SEED_BYTES, SoftwareSigner

KEY_FILE_FORMAT = "lightfence-ed25519-v1"


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
