"""Bearer token files: one token on one line, refused when others can read them."""

from __future__ import annotations

from pathlib import Path

import pytest

from keystore.token_files import read_token_file
from protocol.errors import KeyFileError


def token_file(tmp_path: Path, text: str, mode: int = 0o600) -> Path:
    path = tmp_path / "t.token"
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_the_first_line_is_the_token(tmp_path: Path) -> None:
    assert read_token_file(token_file(tmp_path, "lf_abc\n")) == "lf_abc"


@pytest.mark.parametrize(("text", "mode", "message"), [
    ("lf_abc\n", 0o640, r"accessible by group or others.*chmod 600"),
    ("", 0o600, "one bearer token on one line"),
    ("lf_a b\n", 0o600, "one bearer token on one line"),
])
def test_bad_token_files_are_refused_untouched(tmp_path: Path, text: str, mode: int,
                                               message: str) -> None:
    path = token_file(tmp_path, text, mode)
    with pytest.raises(KeyFileError, match=message):
        read_token_file(path)
    assert path.read_text(encoding="utf-8") == text


def test_a_missing_token_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(KeyFileError, match="cannot read token file"):
        read_token_file(tmp_path / "missing.token")
