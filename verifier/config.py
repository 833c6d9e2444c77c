"""One typed configuration object, loaded from TOML; CLI flags override only when given."""

from __future__ import annotations

import base64
import binascii
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from config_toml import Table, load_file
from protocol.key_protection import KEY_PROTECTION_LEVELS
from verifier.errors import ConfigError


@dataclass(frozen=True, slots=True)
class WebhookConfig:
    url: str
    secret: str  # HMAC-SHA256 key; never logged


@dataclass(frozen=True, slots=True)
class VerifierConfig:
    data_dir: Path = Path("verifier-data")
    host: str = "127.0.0.1"
    port: int = 8080
    ca_public_key_b64: str = ""  # vendor CA (Ed25519, 32 bytes) that signs chip/landmark certs
    max_body_bytes: int = 8 * 1024 * 1024
    verify_threads: int = 2  # Ed25519 checks run here, off the event loop (PyNaCl drops the GIL)
    max_record_age_s: float = 600.0  # freshness: older records are rejected as `stale`
    max_clock_skew_s: float = 5.0  # records stamped further in the future are `future`
    tick_s: float = 1.0  # scheduler/verdict loop period
    # Worker processes that decide verdicts (verifier/decide_pool.py); 0 decides on a thread of
    # this process, where the geometry holds the GIL the event loop needs (fleets: 1 or more).
    decide_processes: int = 0
    landmark_dead_after_s: float = 60.0  # no task poll for this long → landmark `dead`
    task_ttl_s: float = 30.0  # a handed-out task not answered by then may be re-issued
    mesh_interval_s: float = 300.0  # how often each landmark probes its peers
    calibration_refresh_s: float = 300.0
    sqlite_synchronous: str = "NORMAL"  # WAL+NORMAL survives a process kill; FULL adds power loss
    # "" keeps the store in <data_dir>/verifier.sqlite3; "postgresql://user@host/db" puts it
    # on PostgreSQL (verifier/store/postgres.py). The evidence log stays in data_dir either way.
    database_url: str = ""
    webhooks: tuple[WebhookConfig, ...] = ()
    # 0: retry until a 2xx (docs/CONTRACTS.md); n > 0: give up after n attempts.
    webhook_max_attempts: int = 0
    webhook_backoff_base_s: float = 1.0
    webhook_timeout_s: float = 10.0  # one delivery attempt (connect + send + answer) at most
    # False: GET /metrics needs a bearer token allowed to read (it names chips' alert counts
    # and verdict tallies); True keeps it open for a scraper on a trusted network.
    metrics_public: bool = True
    evidence: bool = True  # append verdicts/alerts to the evidence log (docs/evidence.md)
    log_key_file: Path | None = None  # evidence log signing key; None = <data_dir>/log.key
    tree_head_interval_s: float = 10.0  # sign a tree head this often when the log grew
    # The least chip key protection that may earn `verified` under any policy (a policy can ask
    # for more, never less). A `software` key can be copied by the host owner to a machine beside
    # a landmark, so production needs more; only demos and tests should lower it to software.
    min_key_protection: str = "tee-bound"
    # Retention (verifier/retention.py, docs/operations.md): raw measurements, verdict rows,
    # finished notifications and the delivery log are pruned after these ages; the evidence
    # log is never pruned.
    retention_measurements_s: float = 30 * 86_400.0
    retention_verdicts_s: float = 365 * 86_400.0
    retention_log_s: float = 90 * 86_400.0
    retention_interval_s: float = 3_600.0
    # GPU attestation (docs/protocol.md): the pinned NVIDIA device-identity root (None: the one
    # shipped in protocol/data), how long a challenge stays fresh, and how old an enrolled GPU's
    # last attestation may get before `gpu_attestation_overdue`.
    nvidia_root_cert_file: Path | None = None
    gpu_attestation_challenge_ttl_s: float = 120.0
    gpu_attestation_max_age_s: float = 86_400.0

    @property
    def ca_public_key(self) -> bytes:
        try:
            key = base64.b64decode(self.ca_public_key_b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise ConfigError("ca_public_key_b64 is not base64") from exc
        if len(key) != 32:
            raise ConfigError("ca_public_key_b64 must decode to a 32-byte Ed25519 key")
        return key

    @property
    def db_path(self) -> Path:
        return self.data_dir / "verifier.sqlite3"

    @property
    def log_key_path(self) -> Path:
        return self.log_key_file if self.log_key_file is not None else self.data_dir / "log.key"


def _read(document: Table) -> VerifierConfig:
    """Every field of `VerifierConfig` is a key of `[verifier]`, read by the field's type."""
    table = document.table("verifier") if document.has("verifier") else document
    values = table.into(VerifierConfig, custom={"webhooks": _webhooks})
    document.finish()
    try:
        config = VerifierConfig(**values)
        _validate(config)
    except ConfigError as exc:
        raise table.error(str(exc)) from exc
    return config


def _webhooks(table: Table, key: str) -> tuple[WebhookConfig, ...]:
    hooks = []
    for hook in table.tables(key):
        hooks.append(WebhookConfig(url=hook.text("url"), secret=hook.text("secret")))
        hook.finish()
    return tuple(hooks)


def _validate(config: VerifierConfig) -> None:
    for name in ("max_body_bytes", "verify_threads", "port"):
        value = getattr(config, name)
        if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{name} must be a positive integer")
    processes = config.decide_processes
    if not isinstance(processes, int) or isinstance(processes, bool) or processes < 0:
        raise ConfigError("decide_processes must be 0 (a thread) or a positive integer")
    attempts = config.webhook_max_attempts
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 0:
        raise ConfigError("webhook_max_attempts must be 0 (until a 2xx) or a positive integer")
    for hook in config.webhooks:
        if not hook.secret.strip():  # an empty HMAC key makes every signature forgeable
            raise ConfigError(f"webhook {hook.url}: the secret must not be empty")
    if not isinstance(config.metrics_public, bool):
        raise ConfigError("metrics_public must be true or false")
    for name in ("max_record_age_s", "max_clock_skew_s", "tick_s", "landmark_dead_after_s",
                 "task_ttl_s", "mesh_interval_s", "calibration_refresh_s",
                 "webhook_backoff_base_s", "webhook_timeout_s", "tree_head_interval_s",
                 "retention_measurements_s",
                 "retention_verdicts_s", "retention_log_s", "retention_interval_s",
                 "gpu_attestation_challenge_ttl_s", "gpu_attestation_max_age_s"):
        value = getattr(config, name)
        if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
            raise ConfigError(f"{name} must be a positive number")
    # A measurement must outlive every window that reads it back: the freshness window (its
    # nonce's unique row is the replay defence), the landmark-fault and mesh windows.
    needed_s = max(86_400.0, config.max_record_age_s + config.max_clock_skew_s,
                   config.landmark_dead_after_s * 5, config.calibration_refresh_s * 4)
    if config.retention_measurements_s < needed_s:
        raise ConfigError(f"retention_measurements_s must be at least {needed_s:g} s (one "
                          f"day, and longer than the freshness, fault and mesh windows)")
    if not isinstance(config.database_url, str) or (
            config.database_url and not config.database_url.startswith(
                ("postgresql://", "postgres://"))):
        raise ConfigError("database_url must be empty (SQLite in data_dir) or a"
                          " postgresql:// URL")
    if config.sqlite_synchronous not in ("NORMAL", "FULL"):
        raise ConfigError("sqlite_synchronous must be NORMAL or FULL")
    if config.min_key_protection not in KEY_PROTECTION_LEVELS:
        raise ConfigError(f"min_key_protection must be one of {', '.join(KEY_PROTECTION_LEVELS)}")
    if config.ca_public_key_b64:
        _ = config.ca_public_key


def load_config(path: Path, **overrides: Any) -> VerifierConfig:
    """Load TOML at `path`; keyword overrides that are not None replace file values."""
    config = load_file(path, "verifier", _read, ConfigError)
    if config.webhooks:
        _check_private(path)
    given = {k: v for k, v in overrides.items() if v is not None}
    if given:
        config = replace(config, **given)
        _validate(config)
    return config


def _check_private(path: Path) -> None:
    """A config holding secrets (webhook HMAC keys) must not be readable by group or others:
    the same rule as the key files (protocol.keys)."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise ConfigError(f"cannot stat {path}: {exc.strerror}") from exc
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError(f"{path} holds webhook secrets and is readable by group or others "
                          f"(mode {stat.S_IMODE(mode):o}); chmod 600 it")


def default_config(**overrides: Any) -> VerifierConfig:
    config = replace(VerifierConfig(), **overrides) if overrides else VerifierConfig()
    _validate(config)
    return config


__all__ = ["VerifierConfig", "WebhookConfig", "default_config", "load_config"]
