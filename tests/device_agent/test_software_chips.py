from pathlib import Path

import pytest

from device_agent.agent import load_chips
from device_agent.config import load_agent_config
from device_agent.errors import AgentConfigError
from keystore.key_files import generate_key_file
from protocol.errors import KeyFileError


def _config(tmp_path: Path, software_chips: str) -> Path:
    (tmp_path / "keys").mkdir(exist_ok=True)
    path = tmp_path / "agent.toml"
    path.write_text(
        "[agent]\n"
        'ca_public_key = "ca.pub.json"\n'
        'landmark_certs_dir = "landmarks"\n'
        'key_dir = "keys"\n'
        f"software_chips = {software_chips}\n",
        encoding="utf-8",
    )
    return path


def test_software_chips_answer_with_their_enrolled_keys(tmp_path: Path) -> None:
    config = load_agent_config(_config(tmp_path, '["gpu-a", "gpu-b"]'))
    names = ("gpu-a", "gpu-b")
    keys = {name: generate_key_file(tmp_path / "keys" / f"{name}.key") for name in names}
    chips = load_chips(config, simulate=None)
    assert [chip.chip_id for chip in chips] == ["gpu-a", "gpu-b"]
    for chip in chips:
        assert chip.signer.public_key() == keys[chip.chip_id].public_key()


def test_software_chip_without_a_key_is_refused_not_invented(tmp_path: Path) -> None:
    config = load_agent_config(_config(tmp_path, '["gpu-missing"]'))
    with pytest.raises(KeyFileError, match=r"gpu-missing\.key"):
        load_chips(config, simulate=None)
    assert not (tmp_path / "keys" / "gpu-missing.key").exists()


def test_software_chips_must_be_a_list_of_ids(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="software_chips must be a list of chip ids"):
        load_agent_config(_config(tmp_path, "[1, 2]"))
