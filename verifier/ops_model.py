"""Frozen values for operations: notification channels, routing and mute rules, the delivery
log, zones and chip membership (docs/operations.md)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CHANNEL_KINDS = ("email", "slack", "webhook")
# Settings that are secrets: stored, used, never returned by the API or printed by the CLI.
SECRET_SETTINGS = frozenset({"password", "secret", "url"})


@dataclass(frozen=True, slots=True)
class Channel:
    channel_id: str
    kind: str  # email | slack | webhook
    settings: dict[str, Any]  # kind-specific, validated by verifier.channels.check_settings
    enabled: bool


@dataclass(frozen=True, slots=True)
class RoutingRule:
    """Send matching alert events to one channel. An empty tuple matches anything."""

    rule_id: int
    channel_id: str
    alert_types: tuple[str, ...]
    min_severity: str  # low | medium | high | critical
    groups: tuple[str, ...]  # the chip is in at least one of these
    zones: tuple[str, ...]  # the chip's zone is one of these


@dataclass(frozen=True, slots=True)
class MuteRule:
    """Silences notifications (never the record) of alerts matching every field given."""

    rule_id: int
    reason: str
    chip_id: str | None
    group: str | None
    zone: str | None
    landmark_id: str | None
    alert_type: str | None
    created_by: str
    created_unix_ns: int
    expires_unix_ns: int


@dataclass(frozen=True, slots=True)
class Notification:
    """One queued message: an alert event for one channel (the channel outbox)."""

    notification_id: int
    channel_id: str
    alert_id: int
    event: str
    body: bytes  # {"event", "alert"} JSON, the same shape as the HMAC webhooks
    attempts: int


@dataclass(frozen=True, slots=True)
class Delivery:
    """One attempt to deliver one notification: the delivery log's row."""

    delivery_id: int
    destination: str  # channel id, or config-webhook-<hash> for a TOML webhook
    kind: str
    alert_id: int
    event: str
    attempt: int  # 1 for the first try
    time_unix_ns: int
    outcome: str  # delivered | failed | gave_up
    status_code: int | None  # HTTP status or SMTP reply code, when one came back
    error: str | None


@dataclass(frozen=True, slots=True)
class Zone:
    """A site: where its chips are, and the licence a chip enrolled there starts with."""

    zone_id: str
    name: str
    lat_deg: float
    lon_deg: float
    licence: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Membership:
    chip_id: str
    zone_id: str | None
    groups: tuple[str, ...]


NO_MEMBERSHIP = Membership("", None, ())
