"""`agent.toml` → one typed `AgentConfig`. Relative paths are relative to the file."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from device_agent.errors import AgentConfigError


@dataclass(frozen=True, slots=True)
class LandmarkEndpoint:
    landmark_id: str
    host: str
    port: int  # the landmark's challenge port: HELLOs go there to open the NAT path


@dataclass(frozen=True, slots=True)
class AgentConfig:
    ca_public_key: Path
    landmark_certs_dir: Path
    key_dir: Path  # <chip_id>.key per enrolled chip (software stand-in for the chip's key)
    host: str = "0.0.0.0"
    port: int = 7500
    landmarks: tuple[LandmarkEndpoint, ...] = ()
    hello_interval_s: float = 30.0
    stats_interval_s: float = 60.0
    extra_delay_ms: float = 0.0  # artificial answer delay, for tests and geography emulation
    clock_skew_s: float = 5.0
    rate_per_s: float = 10_000.0
    burst: float = 2_000.0
    replay_cache_size: int = 200_000
    # Chips answered with software keys `<key_dir>/<chip_id>.key` instead of NVML discovery:
    # the stand-in for a hardware root of trust on hosts without GPUs (demo, staging).
    software_chips: tuple[str, ...] = ()


def load_agent_config(path: Path) -> AgentConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AgentConfigError(f"{path}: cannot read agent config: {exc}") from exc
    table = raw.get("agent")
    if not isinstance(table, dict):
        raise AgentConfigError(f"{path}: missing [agent] table")

    def get(key: str, kind: type | tuple[type, ...], default: Any) -> Any:
        value = table.get(key, default)
        if value is not default and (not isinstance(value, kind) or isinstance(value, bool)):
            raise AgentConfigError(f"{path}: [agent] {key} has the wrong type ({value!r})")
        return value

    def required_path(key: str) -> Path:
        value = table.get(key)
        if not isinstance(value, str):
            raise AgentConfigError(f"{path}: [agent] needs {key} (a path)")
        return path.parent / value

    landmarks = []
    for entry in raw.get("landmarks", []):
        try:
            landmarks.append(
                LandmarkEndpoint(str(entry["id"]), str(entry["host"]), int(entry["port"]))
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise AgentConfigError(
                f"{path}: each [[landmarks]] needs id, host, port: {entry!r}"
            ) from exc
    software_chips = table.get("software_chips", [])
    if not isinstance(software_chips, list) or not all(
        isinstance(chip_id, str) for chip_id in software_chips
    ):
        raise AgentConfigError(f"{path}: [agent] software_chips must be a list of chip ids")
    number = (int, float)
    extra_delay_ms = float(get("extra_delay_ms", number, 0.0))
    if extra_delay_ms < 0:
        raise AgentConfigError(f"{path}: extra_delay_ms cannot be negative")
    return AgentConfig(
        ca_public_key=required_path("ca_public_key"),
        landmark_certs_dir=required_path("landmark_certs_dir"),
        key_dir=required_path("key_dir"),
        host=get("host", str, "0.0.0.0"),
        port=get("port", int, 7500),
        landmarks=tuple(landmarks),
        software_chips=tuple(software_chips),
        hello_interval_s=float(get("hello_interval_s", number, 30.0)),
        stats_interval_s=float(get("stats_interval_s", number, 60.0)),
        extra_delay_ms=extra_delay_ms,
        clock_skew_s=float(get("clock_skew_s", number, 5.0)),
        rate_per_s=float(get("rate_per_s", number, 10_000.0)),
        burst=float(get("burst", number, 2_000.0)),
        replay_cache_size=get("replay_cache_size", int, 200_000),
    )
