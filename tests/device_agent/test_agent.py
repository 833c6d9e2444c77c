"""Device agent: NVML discovery with a fake pynvml, simulated chips, config, a running agent."""

from __future__ import annotations

import socket
import threading
import types
from pathlib import Path

import pytest

from device_agent.agent import build_server, load_chips, run_agent
from device_agent.chips import discover_nvml, simulated_chips
from device_agent.config import AgentConfig, load_agent_config
from device_agent.errors import AgentConfigError, NvmlUnavailableError
from keystore.key_files import generate_key_file, load_signer
from lightfence.cli import main
from protocol.wire import Hello, decode
from tests.pki import make_pki


class FakeNvmlError(Exception):
    pass


def fake_pynvml(uuids: list[str], fail_init: bool = False) -> types.ModuleType:
    """Just the NVML calls the agent makes, with pynvml's names and return types."""
    module = types.ModuleType("pynvml")
    state = {"initialised": False}

    def init() -> None:
        if fail_init:
            raise FakeNvmlError("NVML_ERROR_DRIVER_NOT_LOADED")
        state["initialised"] = True

    def shutdown() -> None:
        state["initialised"] = False

    def serial(handle: int) -> str:
        if handle == 1:
            raise FakeNvmlError("NVML_ERROR_NOT_SUPPORTED")
        return f"165{handle:07d}"

    module.nvmlInit = init  # type: ignore[attr-defined]
    module.nvmlShutdown = shutdown  # type: ignore[attr-defined]
    module.nvmlDeviceGetCount = lambda: len(uuids)  # type: ignore[attr-defined]
    module.nvmlDeviceGetHandleByIndex = lambda index: index  # type: ignore[attr-defined]
    module.nvmlDeviceGetUUID = lambda handle: uuids[handle]  # type: ignore[attr-defined]
    module.nvmlDeviceGetName = lambda handle: b"NVIDIA H100 80GB HBM3"  # type: ignore[attr-defined]
    module.nvmlDeviceGetSerial = serial  # type: ignore[attr-defined]
    module.state = state  # type: ignore[attr-defined]
    return module


def test_nvml_discovery_uses_enrolled_keys_and_skips_others(tmp_path: Path) -> None:
    uuids = ["GPU-1111aaaa-0000", "GPU-2222bbbb-0000", "GPU-3333cccc-0000"]
    generate_key_file(tmp_path / f"{uuids[0]}.key")
    generate_key_file(tmp_path / f"{uuids[1]}.key")
    nvml = fake_pynvml(uuids)
    chips = discover_nvml(tmp_path, nvml)
    assert [c.chip_id for c in chips] == uuids[:2]  # the third GPU is not enrolled
    assert chips[0].model == "NVIDIA H100 80GB HBM3" and chips[0].serial == "1650000000"
    assert chips[1].serial == "unknown"
    assert nvml.state == {"initialised": False}


def test_nvml_without_driver_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(NvmlUnavailableError, match="did not initialise"):
        discover_nvml(tmp_path, fake_pynvml([], fail_init=True))


def test_simulated_chips_persist_their_keys(tmp_path: Path) -> None:
    first = simulated_chips(3, tmp_path)
    again = simulated_chips(3, tmp_path)
    assert [c.signer.public_key() for c in first] == [c.signer.public_key() for c in again]
    assert (tmp_path / "sim-2.key").stat().st_mode & 0o777 == 0o600


def agent_config(tmp_path: Path, landmark_port: int, **extra: object) -> AgentConfig:
    pki = make_pki(tmp_path)
    lines = [
        "[agent]",
        'host = "127.0.0.1"',
        "port = 0",
        'ca_public_key = "ca.pub.json"',
        'landmark_certs_dir = "certs/landmarks"',
        'key_dir = "keys/chips"',
        "hello_interval_s = 0.05",
        "stats_interval_s = 0.05",
        *(f"{key} = {value!r}" for key, value in extra.items()),
        "[[landmarks]]",
        'id = "lm-1"',
        'host = "127.0.0.1"',
        f"port = {landmark_port}",
    ]
    (pki.root / "agent.toml").write_text("\n".join(lines) + "\n")
    return load_agent_config(pki.root / "agent.toml")


def test_running_agent_sends_hellos_naming_its_chips(tmp_path: Path) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as landmark:
        landmark.bind(("127.0.0.1", 0))
        landmark.settimeout(5)
        config = agent_config(tmp_path, landmark.getsockname()[1])
        stop = threading.Event()
        thread = threading.Thread(target=run_agent, args=(config, 2, stop))
        thread.start()
        try:
            hello = decode(landmark.recv(2048))
        finally:
            stop.set()
            thread.join(timeout=5)
    assert isinstance(hello, Hello) and hello.chip_ids == ("sim-0", "sim-1")


def test_nvml_mode_without_gpus_refuses_to_start(tmp_path: Path) -> None:
    config = agent_config(tmp_path, 9)
    with pytest.raises(AgentConfigError, match="no chips to serve"):
        build_server(config, [])
    chips = load_chips(config, simulate=4)
    assert [c.chip_id for c in chips][-1] == "sim-3"


def test_agent_config_rejects_bad_values(tmp_path: Path) -> None:
    with pytest.raises(AgentConfigError, match="extra_delay_ms cannot be negative"):
        agent_config(tmp_path / "a", 9, extra_delay_ms=-1.0)
    (tmp_path / "bad.toml").write_text("[agent]\nport = 'x'\n")
    with pytest.raises(AgentConfigError, match="needs ca_public_key"):
        load_agent_config(tmp_path / "bad.toml")
    cfg = load_agent_config(Path(__file__).parents[2] / "examples" / "agent.toml")
    assert cfg.port == 7500 and len(cfg.landmarks) == 2


def test_keys_cli_refuses_readable_key(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["keys", "ca", "--out", str(tmp_path / "ca")]) == 0
    ca_key = tmp_path / "ca" / "ca.key"
    assert load_signer(ca_key)
    ca_key.chmod(0o644)
    args = [
        "keys",
        "enrol",
        "--ca-key",
        str(ca_key),
        "--chip-id",
        "gpu-0",
        "--key-dir",
        str(tmp_path / "k"),
        "--cert-dir",
        str(tmp_path / "c"),
    ]
    assert main(args) == 1
    assert "accessible by group or others" in capsys.readouterr().err
    assert not (tmp_path / "c" / "gpu-0.json").exists()
    ca_key.chmod(0o600)
    assert main(args) == 0 and (tmp_path / "c" / "gpu-0.json").exists()
