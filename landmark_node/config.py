"""`landmark.toml` → one typed `LandmarkConfig`. Relative paths are relative to the file."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from landmark_node.errors import LandmarkConfigError

MAX_POLL_WAIT_S = 30.0  # the verifier's long-poll limit (GET /v1/landmarks/{id}/tasks)


@dataclass(frozen=True, slots=True)
class VerifierLink:
    """The `[verifier]` table: tasks are long-polled from, and batches uploaded to, `url`."""

    url: str  # e.g. "https://verifier.example:8080"
    token_file: Path  # the landmark's bearer token, one line, mode 0600
    poll_wait_s: float = 20.0  # long-poll duration per task request


@dataclass(frozen=True, slots=True)
class LandmarkConfig:
    landmark_id: str
    key_file: Path
    ca_public_key: Path
    chip_certs_dir: Path
    landmark_certs_dir: Path
    spool_path: Path
    outbox_dir: Path  # FileSink directory (used when there is no [verifier] table)
    host: str = "0.0.0.0"
    challenge_port: int = 7400  # challenges leave, answers and HELLOs arrive here
    responder_port: int | None = 7401  # peers' mesh probes are answered here; None = off
    round_interval_s: float = 60.0
    timeout_s: float = 0.5
    max_attempts: int = 3
    # Independent timed probes per task, spaced out: the verifier keeps the smallest RTT per
    # landmark and round, so a probe that hit a busy moment costs nothing.
    probes_per_task: int = 1
    probe_spacing_s: float = 0.2
    challenge_lifetime_s: float = 2.0
    max_rate_per_s: float = 5_000.0
    batch_max_records: int = 500
    batch_interval_s: float = 1.0
    targets: tuple[dict[str, Any], ...] = ()
    tasks_file: Path | None = None
    verifier: VerifierLink | None = None  # replaces targets/tasks_file and the FileSink


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
    verifier = _verifier_link(path, raw.get("verifier"))
    if verifier is not None and (targets or tasks_file is not None):
        raise LandmarkConfigError(
            f"{path}: [verifier] hands out the tasks; remove [[targets]] and tasks_file"
        )
    responder_port = _get(table, "responder_port", int, 7401)
    number = (int, float)
    timeout_s = float(_get(schedule, "timeout_s", number, 0.5))
    lifetime_s = float(_get(schedule, "challenge_lifetime_s", number, 2.0))
    # A measurement waits for READY, then for RESPONSE, each up to timeout_s.
    if not 0 < 2 * timeout_s < lifetime_s:
        raise LandmarkConfigError(
            f"{path}: [schedule] challenge_lifetime_s ({lifetime_s:g}) must exceed twice "
            f"timeout_s ({timeout_s:g}), which must be positive"
        )
    probes_per_task = _get(schedule, "probes_per_task", int, 1)
    probe_spacing_s = float(_get(schedule, "probe_spacing_s", number, 0.2))
    if not 1 <= probes_per_task <= 16 or probe_spacing_s < 0:
        raise LandmarkConfigError(
            f"{path}: probes_per_task must be 1..16 and probe_spacing_s >= 0"
        )
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
        timeout_s=timeout_s,
        max_attempts=_get(schedule, "max_attempts", int, 3),
        probes_per_task=probes_per_task,
        probe_spacing_s=probe_spacing_s,
        challenge_lifetime_s=lifetime_s,
        max_rate_per_s=float(_get(schedule, "max_rate_per_s", number, 5_000.0)),
        batch_max_records=_get(batch, "max_records", int, 500),
        batch_interval_s=float(_get(batch, "interval_s", number, 1.0)),
        targets=tuple(targets),
        tasks_file=base / tasks_file if isinstance(tasks_file, str) else None,
        verifier=verifier,
    )


def _verifier_link(path: Path, table: Any) -> VerifierLink | None:
    if table is None:
        return None
    if not isinstance(table, dict):
        raise LandmarkConfigError(f"{path}: [verifier] must be a table")
    unknown = set(table) - {"url", "token_file", "poll_wait_s"}
    if unknown:
        raise LandmarkConfigError(f"{path}: [verifier] has unknown keys {sorted(unknown)}")
    url, token_file = table.get("url"), table.get("token_file")
    if not isinstance(url, str) or not url.startswith(("http://", "https://")):
        raise LandmarkConfigError(f"{path}: [verifier] needs url (http:// or https://)")
    if not isinstance(token_file, str) or not token_file:
        raise LandmarkConfigError(f"{path}: [verifier] needs token_file (a path)")
    poll_wait_s = _get(table, "poll_wait_s", (int, float), 20.0)
    if not 0 < poll_wait_s <= MAX_POLL_WAIT_S:
        raise LandmarkConfigError(
            f"{path}: [verifier] poll_wait_s must be in (0, {MAX_POLL_WAIT_S:g}] s"
        )
    return VerifierLink(url.rstrip("/"), path.parent / token_file, float(poll_wait_s))
