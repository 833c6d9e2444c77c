"""The verifier's one exception base and its typed errors (each maps to one HTTP status)."""

from __future__ import annotations


class VerifierError(Exception):
    """Base for verifier errors; the message is safe to show to the API client."""

    status_code = 400


class ConfigError(VerifierError):
    """The TOML configuration is unreadable or invalid."""


class NotFoundError(VerifierError):
    status_code = 404


class ForbiddenError(VerifierError):
    status_code = 403


class UnauthorizedError(VerifierError):
    status_code = 401


class InvalidInputError(VerifierError):
    """Well-formed JSON whose content is wrong (bad certificate, bad licence, bad signature)."""

    status_code = 422


class ConflictError(VerifierError):
    status_code = 409
