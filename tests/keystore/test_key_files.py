"""Key files: created 0600 and never overwritten, refused when others can read them or when
malformed, and the key they hold signs as it did."""

from __future__ import annotations

from pathlib import Path

import pytest

from keystore.key_files import generate_key_file, load_signer
from protocol.errors import KeyFileError
from protocol.keys import verify_signature


def test_key_file_round_trip_is_0600(tmp_path: Path) -> None:
    path = tmp_path / "chip.key"
    signer = generate_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_signer(path).public_key() == signer.public_key()
    verify_signature(signer.public_key(), b"m", load_signer(path).sign(b"m"))


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_group_or_world_readable_key_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "chip.key"
    generate_key_file(path)
    path.chmod(mode)
    with pytest.raises(KeyFileError, match=r"accessible by group or others.*chmod 600"):
        load_signer(path)
    path.chmod(0o600)
    load_signer(path)  # the key itself is intact


def test_existing_key_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "chip.key"
    first = generate_key_file(path)
    with pytest.raises(KeyFileError, match="already exists"):
        generate_key_file(path)
    assert load_signer(path).public_key() == first.public_key()


def test_malformed_key_files_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "bad.key"
    path.write_text('{"format": "lightfence-ed25519-v1", "seed_b64": "AAAA"}')
    path.chmod(0o600)
    with pytest.raises(KeyFileError, match="seed_b64 must be 32 bytes"):
        load_signer(path)
    with pytest.raises(KeyFileError, match="cannot read"):
        load_signer(tmp_path / "missing.key")
