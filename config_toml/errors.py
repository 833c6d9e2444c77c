"""The loader's one exception; each part re-raises it as its own config error."""

from __future__ import annotations


class ConfigFileError(ValueError):
    """A config file that cannot be used; the message names the file, table and key."""
