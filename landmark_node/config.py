"""`landmark.toml` → one typed `LandmarkConfig`. Relative paths are relative to the file."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landmark_node.errors import LandmarkConfigError


@dataclass(frozen=True, slots=True)
class LandmarkConfig:
    landmark_id: str
    key_file: Path
    ca_public_key: Path
    chip_certs_dir: Path
    landmark_certs_dir: Path
    spool_path: Path
    outbox_dir: Path  # FileSink directory
    host: str = "0.0.0.0"
    challenge_port: int = 7400  # challenges leave, answers and HELLOs arrive here
    responder_port: int | None = 7401  # peers' mesh probes are answered here; None = off
    round_interval_s: float = 60.0
    timeout_s: float = 0.5
    max_attempts: int = 3
    challenge_lifetime_s: float = 2.0
    max_rate_per_s: float = 5_000.0
    batch_max_records: int = 500
    batch_interval_s: float = 1.0
    targets: tuple[dict[str, Any], ...] = ()
    tasks_file: Path | None = None


def _get(table: dict[str, Any], key: str, kind: type | tuple[type, ...], default: Any) -> Any:
    value = table.get(key, default)
    if value is default:
        return value
    if not isinstance(value, kind) or isinstance(value, bool):
        raise LandmarkConfigError(f"landmark config: {key} has the wrong type ({value!r})")
    return value


def load_landmark_config(path: Path) -> LandmarkConfig:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise LandmarkConfigError(f"{path}: cannot read landmark config: {exc}") from exc
    base = path.parent
    table = raw.get("landmark")
    if not isinstance(table, dict):
        raise LandmarkConfigError(f"{path}: missing [landmark] table")
    schedule = raw.get("schedule", {})
    batch = raw.get("batch", {})

    def required_path(key: str) -> Path:
        value = table.get(key)
        if not isinstance(value, str):
            raise LandmarkConfigError(f"{path}: [landmark] needs {key} (a path)")
        return base / value

    landmark_id = table.get("id")
    if not isinstance(landmark_id, str):
        raise LandmarkConfigError(f"{path}: [landmark] needs id")
    targets = raw.get("targets", [])
    if not isinstance(targets, list):
        raise LandmarkConfigError(f"{path}: targets must be an array of tables")
    tasks_file = schedule.get("tasks_file")
    responder_port = _get(table, "responder_port", int, 7401)
    number = (int, float)
    return LandmarkConfig(
        landmark_id=landmark_id,
        key_file=required_path("key_file"),
        ca_public_key=required_path("ca_public_key"),
        chip_certs_dir=required_path("chip_certs_dir"),
        landmark_certs_dir=required_path("landmark_certs_dir"),
        spool_path=required_path("spool_path"),
        outbox_dir=required_path("outbox_dir"),
        host=_get(table, "host", str, "0.0.0.0"),
        challenge_port=_get(table, "challenge_port", int, 7400),
        responder_port=None if responder_port < 0 else responder_port,
        round_interval_s=float(_get(schedule, "round_interval_s", number, 60.0)),
        timeout_s=float(_get(schedule, "timeout_s", number, 0.5)),
        max_attempts=_get(schedule, "max_attempts", int, 3),
        challenge_lifetime_s=float(_get(schedule, "challenge_lifetime_s", number, 2.0)),
        max_rate_per_s=float(_get(schedule, "max_rate_per_s", number, 5_000.0)),
        batch_max_records=_get(batch, "max_records", int, 500),
        batch_interval_s=float(_get(batch, "interval_s", number, 1.0)),
        targets=tuple(targets),
        tasks_file=base / tasks_file if isinstance(tasks_file, str) else None,
    )
