"""`landmark.toml` → one typed `LandmarkConfig`. Relative paths are relative to the file."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from config_toml import Table, load_file
from landmark_node.errors import LandmarkConfigError

MAX_POLL_WAIT_S = 30.0  # the verifier's long-poll limit (GET /v1/landmarks/{id}/tasks)


@dataclass(frozen=True, slots=True)
class VerifierLink:
    """The `[verifier]` table: tasks are long-polled from, and batches uploaded to, `url`."""

    url: str  # e.g. "https://verifier.example:8080"
    token_file: Path  # the landmark's bearer token, one line, mode 0600
    poll_wait_s: float = 20.0  # long-poll duration per task request


@dataclass(frozen=True, slots=True)
class CrossConnect:
    """A `[[cross_connect]]` entry: targets registered at `public` sit in this landmark's own
    data centre and are probed at `local`, over the landmark's own link, not over the route to
    their public address (as a co-located landmark reaches the chips beside it). The RTT is
    still measured end to end; only the address the datagrams go to changes."""

    public: str  # the host the verifier's tasks name
    local: str  # the host the landmark sends to instead (same port)


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
    cross_connects: tuple[CrossConnect, ...] = ()

    def local_host(self, host: str) -> str:
        """Where to send datagrams for a target registered at `host`."""
        for link in self.cross_connects:
            if link.public == host:
                return link.local
        return host


def load_landmark_config(path: Path) -> LandmarkConfig:
    return load_file(path, "landmark", _read, LandmarkConfigError)


def _read(document: Table) -> LandmarkConfig:
    landmark = document.table("landmark", required=True)
    schedule = document.table("schedule")
    batch = document.table("batch")
    # Each target's keys are checked where targets are built (landmark_node.service).
    targets = document.raw_tables("targets")
    tasks_file = schedule.optional_path("tasks_file")
    verifier = _verifier_link(document)
    cross_connects = _cross_connects(document)
    document.finish()
    if verifier is not None and (targets or tasks_file is not None):
        raise document.error("[verifier] hands out the tasks; remove [[targets]] and tasks_file")
    responder_port = landmark.integer("responder_port", 7401)
    timeout_s = schedule.number("timeout_s", 0.5)
    lifetime_s = schedule.number("challenge_lifetime_s", 2.0)
    # A measurement waits for READY, then for RESPONSE, each up to timeout_s.
    if not 0 < 2 * timeout_s < lifetime_s:
        raise schedule.error(
            f"challenge_lifetime_s ({lifetime_s:g}) must exceed twice "
            f"timeout_s ({timeout_s:g}), which must be positive"
        )
    probes_per_task = schedule.integer("probes_per_task", 1)
    probe_spacing_s = schedule.number("probe_spacing_s", 0.2)
    if not 1 <= probes_per_task <= 16 or probe_spacing_s < 0:
        raise schedule.error("probes_per_task must be 1..16 and probe_spacing_s >= 0")
    config = LandmarkConfig(
        landmark_id=landmark.text("id"),
        key_file=landmark.path("key_file"),
        ca_public_key=landmark.path("ca_public_key"),
        chip_certs_dir=landmark.path("chip_certs_dir"),
        landmark_certs_dir=landmark.path("landmark_certs_dir"),
        spool_path=landmark.path("spool_path"),
        outbox_dir=landmark.path("outbox_dir"),
        host=landmark.text("host", "0.0.0.0"),
        challenge_port=landmark.integer("challenge_port", 7400),
        responder_port=None if responder_port < 0 else responder_port,
        round_interval_s=schedule.number("round_interval_s", 60.0),
        timeout_s=timeout_s,
        max_attempts=schedule.integer("max_attempts", 3),
        probes_per_task=probes_per_task,
        probe_spacing_s=probe_spacing_s,
        challenge_lifetime_s=lifetime_s,
        max_rate_per_s=schedule.number("max_rate_per_s", 5_000.0),
        batch_max_records=batch.integer("max_records", 500),
        batch_interval_s=batch.number("interval_s", 1.0),
        targets=tuple(targets),
        tasks_file=tasks_file,
        verifier=verifier,
        cross_connects=cross_connects,
    )
    for table in (landmark, schedule, batch):
        table.finish()
    return config


def _verifier_link(document: Table) -> VerifierLink | None:
    if not document.has("verifier"):
        return None
    table = document.table("verifier")
    url = table.text("url")
    if not url.startswith(("http://", "https://")):
        raise table.error(f"needs url (http:// or https://), not {url!r}")
    token_file = table.path("token_file")
    poll_wait_s = table.number("poll_wait_s", 20.0)
    if not 0 < poll_wait_s <= MAX_POLL_WAIT_S:
        raise table.error(f"poll_wait_s must be in (0, {MAX_POLL_WAIT_S:g}] s")
    table.finish()
    return VerifierLink(url.rstrip("/"), token_file, poll_wait_s)


def _cross_connects(document: Table) -> tuple[CrossConnect, ...]:
    links: list[CrossConnect] = []
    for table in document.tables("cross_connect"):
        public, local = table.text("public"), table.text("local")
        table.finish()
        if not public or not local:
            raise table.error("needs non-empty public and local hosts")
        if any(link.public == public for link in links):
            raise table.error(f"public host {public!r} is cross-connected twice")
        links.append(CrossConnect(public, local))
    return tuple(links)
