"""`agent.toml` → one typed `AgentConfig`. Relative paths are relative to the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from config_toml import Table, load_file
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
    return load_file(path, "agent", _read, AgentConfigError)


def _read(document: Table) -> AgentConfig:
    agent = document.table("agent", required=True)
    landmarks = []
    for entry in document.tables("landmarks"):
        landmarks.append(
            LandmarkEndpoint(entry.text("id"), entry.text("host"), entry.integer("port"))
        )
        entry.finish()
    document.finish()
    extra_delay_ms = agent.number("extra_delay_ms", 0.0)
    if extra_delay_ms < 0:
        raise agent.error("extra_delay_ms cannot be negative")
    config = AgentConfig(
        ca_public_key=agent.path("ca_public_key"),
        landmark_certs_dir=agent.path("landmark_certs_dir"),
        key_dir=agent.path("key_dir"),
        host=agent.text("host", "0.0.0.0"),
        port=agent.integer("port", 7500),
        landmarks=tuple(landmarks),
        software_chips=agent.text_list("software_chips", what="chip ids"),
        hello_interval_s=agent.number("hello_interval_s", 30.0),
        stats_interval_s=agent.number("stats_interval_s", 60.0),
        extra_delay_ms=extra_delay_ms,
        clock_skew_s=agent.number("clock_skew_s", 5.0),
        rate_per_s=agent.number("rate_per_s", 10_000.0),
        burst=agent.number("burst", 2_000.0),
        replay_cache_size=agent.integer("replay_cache_size", 200_000),
    )
    agent.finish()
    return config
