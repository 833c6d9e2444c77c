"""Operations' domain functions, shared by the admin API and the CLI: channels, routing rules,
mutes, zones and membership, and the per-zone aggregate. Each runs on the database thread."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from verifier import channels, registry
from verifier.errors import InvalidInputError, NotFoundError
from verifier.model import SEVERITY_BY_TYPE
from verifier.ops_model import Channel, Membership, MuteRule, RoutingRule, Zone
from verifier.routing import SEVERITY_RANK
from verifier.store import Store

_NS = 1_000_000_000
# A mute is for a maintenance window, not forever: silence without an end is how alerts get lost.
MAX_MUTE_S = 90 * 24 * 3600


def put_channel(store: Store, channel_id: str, kind: str, settings: dict[str, Any],
                enabled: bool) -> Channel:
    channel = Channel(channel_id, kind, channels.check_settings(kind, settings), enabled)
    store.put_channel(channel)
    return channel


def delete_channel(store: Store, channel_id: str) -> None:
    if not store.delete_channel(channel_id):
        raise NotFoundError(f"no channel {channel_id}")


def add_routing_rule(store: Store, channel_id: str, *, alert_types: Sequence[str],
                     min_severity: str, groups: Sequence[str],
                     zones: Sequence[str]) -> RoutingRule:
    if store.channel(channel_id) is None:
        raise NotFoundError(f"no channel {channel_id}")
    unknown = set(alert_types) - set(SEVERITY_BY_TYPE)
    if unknown:
        raise InvalidInputError(f"unknown alert types: {sorted(unknown)}")
    if min_severity not in SEVERITY_RANK:
        raise InvalidInputError(f"min_severity must be one of {tuple(SEVERITY_RANK)}")
    return store.add_routing_rule(channel_id, alert_types=alert_types,
                                  min_severity=min_severity, groups=groups, zones=zones)


def delete_routing_rule(store: Store, rule_id: int) -> None:
    if not store.delete_routing_rule(rule_id):
        raise NotFoundError(f"no routing rule {rule_id}")


def add_mute(store: Store, *, reason: str, chip_id: str | None, group: str | None,
             zone: str | None, landmark_id: str | None, alert_type: str | None, by: str,
             expires_unix_ns: int, now_unix_ns: int) -> MuteRule:
    if not reason.strip():
        raise InvalidInputError("a mute needs a reason")
    if all(v is None for v in (chip_id, group, zone, landmark_id, alert_type)):
        raise InvalidInputError("a mute needs a scope: chip_id, group, zone, landmark_id or "
                                "alert_type")
    if alert_type is not None and alert_type not in SEVERITY_BY_TYPE:
        raise InvalidInputError(f"unknown alert type {alert_type}")
    if expires_unix_ns <= now_unix_ns:
        raise InvalidInputError("expires_unix_ns is not in the future")
    if expires_unix_ns - now_unix_ns > MAX_MUTE_S * _NS:
        raise InvalidInputError(f"a mute may last at most {MAX_MUTE_S // 86400} days")
    return store.add_mute(reason=reason, chip_id=chip_id, group=group, zone=zone,
                          landmark_id=landmark_id, alert_type=alert_type, created_by=by,
                          created_unix_ns=now_unix_ns, expires_unix_ns=expires_unix_ns)


def delete_mute(store: Store, rule_id: int) -> None:
    if not store.delete_mute(rule_id):
        raise NotFoundError(f"no mute rule {rule_id}")


def put_zone(store: Store, zone: Zone) -> Zone:
    if zone.licence is not None:
        zone = Zone(zone.zone_id, zone.name, zone.lat_deg, zone.lon_deg,
                    registry.check_licence(zone.licence))
    store.put_zone(zone)
    return zone


def set_membership(store: Store, chip_id: str, *, zone_id: str | None, groups: Sequence[str],
                   apply_zone_licence: bool) -> Membership:
    """Put a chip in a zone (or none) and groups; optionally give it the zone's licence."""
    if store.chip(chip_id) is None:
        raise NotFoundError(f"no chip {chip_id}")
    zone = store.zone(zone_id) if zone_id is not None else None
    if zone_id is not None and zone is None:
        raise NotFoundError(f"no zone {zone_id}")
    if apply_zone_licence:
        if zone is None or zone.licence is None:
            raise InvalidInputError("apply_zone_licence needs a zone with a default licence")
        registry.set_licence(store, chip_id, zone.licence)
    membership = Membership(chip_id, zone_id, tuple(sorted(set(groups))))
    store.put_membership(membership)
    return membership


def in_scope(membership: Membership | None, zone: str | None, group: str | None) -> bool:
    """Whether a chip with this membership passes a zone and/or group filter."""
    return ((zone is None or (membership is not None and membership.zone_id == zone))
            and (group is None or (membership is not None and group in membership.groups)))


@dataclass(frozen=True, slots=True)
class ZoneStats:
    chips: int
    chips_by_state: dict[str, int]

    @property
    def verified_share(self) -> float | None:
        return self.chips_by_state.get("verified", 0) / self.chips if self.chips else None


def zone_stats(store: Store) -> tuple[dict[str, ZoneStats], ZoneStats]:
    """Chips per state in each zone, and for chips in no zone."""
    members = store.memberships()
    counts: dict[str | None, Counter[str]] = {}
    for chip in store.chips():
        member = members.get(chip.chip_id)
        counts.setdefault(member.zone_id if member else None, Counter())[chip.state] += 1

    def stats(counter: Counter[str] | None) -> ZoneStats:
        counter = counter or Counter()
        return ZoneStats(sum(counter.values()), dict(sorted(counter.items())))

    by_zone = {z.zone_id: stats(counts.get(z.zone_id)) for z in store.zones()}
    return by_zone, stats(counts.get(None))
