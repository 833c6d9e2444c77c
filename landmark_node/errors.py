"""Errors of the landmark node; the message is user-facing."""

from __future__ import annotations


class LandmarkError(Exception):
    """Base of every error raised by `landmark_node`."""


class LandmarkConfigError(LandmarkError):
    """The landmark configuration or task file is missing, malformed or inconsistent."""


class BatchRefusedError(LandmarkError):
    """The receiver judged a batch and refused it for good: sending the same bytes again cannot
    succeed (malformed, too large, signed by a key it no longer trusts). The batch is quarantined,
    not retried, so that it does not hold back the batches after it."""
