"""The simulator's one exception base."""

from __future__ import annotations


class SimError(ValueError):
    """Base for simulator errors; the message is user-facing."""


class SiteFileError(SimError):
    """A sites CSV is missing, malformed or holds an impossible coordinate."""


class ScenarioError(SimError):
    """A scenario parameter is out of range or names an unknown adversary or country."""
