"""Key provenance: how well a chip's response key is protected from the host owner.

A closed, ordered set; every chip certificate states one level (CA-signed), every verdict carries
it, and a policy's `min_key_protection` is the least level that may earn `verified`
(docs/protocol.md, "Key provenance"):

- ``software``: the key is a file or process memory on the GPU host. The owner can copy it to a
  machine beside any landmark, and that copy answers for the chip. Location proofs then prove
  where *a copy of the key* is, not where the chip is.
- ``tee-bound``: the key was generated inside a confidential VM / TEE whose attestation covers
  it; the host owner cannot read it, so a copy needs a TEE break.
- ``gpu-attested``: the timed response itself is made by the GPU's hardware identity key and
  checked by the verifier; a copy needs the key extracted from the silicon.

A GPU attestation at enrolment that vouches for a host-held key proves where the key was born,
not where it answers from: such a key is still ``software``.
"""

from __future__ import annotations

from protocol.errors import CertificateError

KEY_PROTECTION_LEVELS = ("software", "tee-bound", "gpu-attested")  # weakest first
LEGACY_KEY_PROTECTION = "software"  # what a v1 certificate (no stated level) is read as


def check_level(level: object, what: str = "key protection") -> str:
    """`level` if it is in `KEY_PROTECTION_LEVELS`; CertificateError naming the set otherwise."""
    if not isinstance(level, str) or level not in KEY_PROTECTION_LEVELS:
        raise CertificateError(
            f"{what} must be one of {', '.join(KEY_PROTECTION_LEVELS)}, got {level!r}"
        )
    return level


def rank(level: str) -> int:
    """0 for the weakest level; CertificateError for an unknown one."""
    return KEY_PROTECTION_LEVELS.index(check_level(level))


def meets(level: str, minimum: str) -> bool:
    """Whether a key protected at `level` is good enough for a policy requiring `minimum`."""
    return rank(level) >= rank(minimum)


def stronger(a: str, b: str) -> str:
    """The stricter of two minimums."""
    return a if rank(a) >= rank(b) else b

