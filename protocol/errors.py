"""Typed errors of the protocol package.

Every failure that crosses a boundary (bytes from a peer, a certificate, a key file) is one of
these, so a UDP path can drop and count instead of crashing on an unexpected exception type.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Base of every error raised by `protocol`; the message is user-facing."""


class WireError(ProtocolError):
    """Malformed bytes or JSON: the peer (or a file) sent something that is not a valid message."""


class SignatureError(ProtocolError):
    """A signature does not verify, or a key or signature has the wrong length."""


class CertificateError(ProtocolError):
    """A certificate is malformed, not signed by the CA, or outside its validity window."""


class KeyFileError(ProtocolError):
    """A key file is missing, malformed, already exists, or readable by group or others."""
