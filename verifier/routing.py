"""Which channels hear of an alert event, and whether a mute rule silences it. Pure functions
over the rules; `verifier.alerts` calls them inside the alert's own transaction."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from verifier.ops_model import NO_MEMBERSHIP, Channel, Membership, MuteRule, RoutingRule

SEVERITY_RANK = {"low": 0, "medium": 1, "high": 2, "critical": 3}


def config_webhook_label(url: str) -> str:
    """The delivery-log name of a webhook from the TOML file: stable, and hides the URL (a
    receiver URL can itself be a credential)."""
    return "config-webhook-" + hashlib.sha256(url.encode()).hexdigest()[:12]


def mute_for(mutes: Iterable[MuteRule], *, alert_type: str, subject_kind: str,
             subject_id: str, membership: Membership | None,
             now_unix_ns: int) -> MuteRule | None:
    """The first unexpired rule whose every given field matches this alert, or None."""
    member = membership or NO_MEMBERSHIP
    for rule in mutes:
        if rule.expires_unix_ns <= now_unix_ns:
            continue
        checks = (
            rule.chip_id is None or (subject_kind == "chip" and rule.chip_id == subject_id),
            rule.landmark_id is None or (subject_kind == "landmark"
                                         and rule.landmark_id == subject_id),
            rule.group is None or rule.group in member.groups,
            rule.zone is None or rule.zone == member.zone_id,
            rule.alert_type is None or rule.alert_type == alert_type,
        )
        if all(checks):
            return rule
    return None


def rule_matches(rule: RoutingRule, *, alert_type: str, severity: str,
                 membership: Membership | None) -> bool:
    member = membership or NO_MEMBERSHIP
    return ((not rule.alert_types or alert_type in rule.alert_types)
            and SEVERITY_RANK[severity] >= SEVERITY_RANK[rule.min_severity]
            and (not rule.groups or bool(set(rule.groups) & set(member.groups)))
            and (not rule.zones or member.zone_id in rule.zones))


def channels_for(rules: Sequence[RoutingRule], channels: Sequence[Channel], *, alert_type: str,
                 severity: str, membership: Membership | None,
                 exclude: str | None = None) -> tuple[str, ...]:
    """Enabled channels with at least one matching rule, each once, in id order. `exclude`
    keeps a channel's own failure alert off the channel that failed."""
    enabled = {c.channel_id for c in channels if c.enabled}
    chosen = {r.channel_id for r in rules
              if r.channel_id in enabled and r.channel_id != exclude
              and rule_matches(r, alert_type=alert_type, severity=severity,
                               membership=membership)}
    return tuple(sorted(chosen))
