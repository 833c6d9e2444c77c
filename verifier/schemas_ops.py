"""Pydantic models of the operations API: channels, routing rules, mutes, the delivery log,
zones and chip membership (docs/operations.md)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from verifier.model import AlertType
from verifier.schemas import ID_PATTERN, Severity, _In, _Out

ChannelKind = Literal["email", "slack", "webhook"]
IdList = list[Annotated[str, Field(pattern=ID_PATTERN)]]


class ChannelIn(_In):
    kind: ChannelKind
    settings: dict[str, Any] = Field(description="kind-specific; see docs/operations.md")
    enabled: bool = True


class ChannelOut(_Out):
    channel_id: str
    kind: ChannelKind
    settings: dict[str, Any] = Field(description="secrets shown only as whether they are set")
    enabled: bool


class ChannelsOut(_Out):
    items: list[ChannelOut]


class RoutingRuleIn(_In):
    channel_id: str = Field(pattern=ID_PATTERN)
    alert_types: list[AlertType] = Field(default=[], description="empty: every type")
    min_severity: Severity = "low"
    groups: IdList = Field(default=[], description="empty: any chip; else a chip in one")
    zones: IdList = Field(default=[], description="empty: any; else a chip in one")


class RoutingRuleOut(_Out):
    rule_id: int
    channel_id: str
    alert_types: list[str]
    min_severity: Severity
    groups: list[str]
    zones: list[str]


class RoutingRulesOut(_Out):
    items: list[RoutingRuleOut]


class MuteIn(_In):
    reason: str = Field(min_length=1, max_length=500)
    expires_unix_ns: int = Field(gt=0, le=2**63 - 1)
    chip_id: str | None = Field(default=None, pattern=ID_PATTERN)
    group: str | None = Field(default=None, pattern=ID_PATTERN)
    zone: str | None = Field(default=None, pattern=ID_PATTERN)
    landmark_id: str | None = Field(default=None, pattern=ID_PATTERN)
    alert_type: AlertType | None = None


class MuteOut(_Out):
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
    active: bool


class MutesOut(_Out):
    items: list[MuteOut]


class DeliveryOut(_Out):
    delivery_id: int
    destination: str
    kind: str
    alert_id: int
    event: str
    attempt: int
    time_unix_ns: int
    outcome: Literal["delivered", "failed", "gave_up"]
    status_code: int | None
    error: str | None


class DeliveriesOut(_Out):
    items: list[DeliveryOut]
    next_cursor: str | None


class ZoneIn(_In):
    name: str = Field(min_length=1, max_length=200)
    lat_deg: float = Field(ge=-90, le=90)
    lon_deg: float = Field(ge=-180, le=180)
    licence: dict[str, Any] | None = Field(
        default=None, description="licence new members start with (licence_from_json input)")


class ZoneOut(_Out):
    zone_id: str
    name: str
    lat_deg: float
    lon_deg: float
    licence: dict[str, Any] | None
    chips: int
    chips_by_state: dict[str, int]
    verified_share: float | None = Field(description="verified chips / chips; null if none")


class ZoneStatsOut(_Out):
    chips: int
    chips_by_state: dict[str, int]
    verified_share: float | None


class ZonesOut(_Out):
    items: list[ZoneOut]
    unzoned: ZoneStatsOut


class MembershipIn(_In):
    zone_id: str | None = Field(default=None, pattern=ID_PATTERN)
    groups: IdList = Field(default=[], max_length=32)
    apply_zone_licence: bool = Field(
        default=False, description="replace the chip's licence with the zone's default")


class MembershipOut(_Out):
    chip_id: str
    zone_id: str | None
    groups: list[str]
