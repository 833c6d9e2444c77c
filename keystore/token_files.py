"""Bearer token files (a landmark's upload token, an agent's attestation token).

Like key files, a token readable by group or others is refused: it lets anyone act in its
holder's name. Shared here so the landmark and the agent read it the same way without importing
each other.
"""

from __future__ import annotations

import stat
from pathlib import Path

from protocol.errors import KeyFileError


def read_token_file(path: Path) -> str:
    """The bearer token in `path` (its first line); KeyFileError if unreadable, accessible by
    group or others, or not one token on one line."""
    try:
        mode = path.stat().st_mode
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise KeyFileError(f"{path}: cannot read token file: {exc}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileError(
            f"{path}: token file is accessible by group or others "
            f"(mode {stat.S_IMODE(mode):04o}); run `chmod 600 {path}`"
        )
    lines = text.strip().splitlines()
    token = lines[0].strip() if lines else ""
    if not token or any(c.isspace() for c in token):
        raise KeyFileError(f"{path}: token file must hold one bearer token on one line")
    return token
