"""Errors of the landmark node; the message is user-facing."""

from __future__ import annotations


class LandmarkError(Exception):
    """Base of every error raised by `landmark_node`."""


class LandmarkConfigError(LandmarkError):
    """The landmark configuration or task file is missing, malformed or inconsistent."""
