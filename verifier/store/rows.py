"""Rows to the domain's values (JSON columns decoded, 0/1 flags to bool), for both backends."""

from __future__ import annotations

import json

from verifier.model import Alert, Chip, Landmark, TaskRow, VerdictRecord
from verifier.ops_model import Channel, Membership, MuteRule, RoutingRule, Zone
from verifier.store.sql import Row


def alert(row: Row) -> Alert:
    values = dict(row)
    values["details"] = json.loads(values["details"])
    return Alert(**values)


def task(row: Row) -> TaskRow:
    values = dict(row)
    values.pop("cancelled", None)
    values["answered"] = bool(values["answered"])
    return TaskRow(**values)


def landmark(row: Row) -> Landmark:
    values = dict(row)
    values["certificate"] = json.loads(values["certificate"])
    values["audit"] = json.loads(values["audit"]) if values["audit"] else None
    values["faulty"] = bool(values["faulty"])
    return Landmark(**values)


def chip(row: Row) -> Chip:
    values = dict(row)
    values["certificate"] = json.loads(values["certificate"])
    values["licence"] = json.loads(values["licence"])
    return Chip(**values)


def verdict(row: Row) -> VerdictRecord:
    values = dict(row)
    values["measurement_ids"] = tuple(json.loads(values["measurement_ids"]))
    values["landmarks"] = tuple(json.loads(values["landmarks"]))
    values["assessment"] = json.loads(values["assessment"]) if values["assessment"] else None
    values["licence"] = json.loads(values["licence"])
    return VerdictRecord(**values)


def routing_rule(row: Row) -> RoutingRule:
    return RoutingRule(row["rule_id"], row["channel_id"], tuple(json.loads(row["alert_types"])),
                       row["min_severity"], tuple(json.loads(row["groups_"])),
                       tuple(json.loads(row["zones"])))


def mute(row: Row) -> MuteRule:
    values = dict(row)
    values["group"] = values.pop("group_")
    return MuteRule(**values)


def channel(row: Row) -> Channel:
    return Channel(row["channel_id"], row["kind"], json.loads(row["settings"]),
                   bool(row["enabled"]))


def zone(row: Row) -> Zone:
    return Zone(row["zone_id"], row["name"], row["lat_deg"], row["lon_deg"],
                json.loads(row["licence"]) if row["licence"] else None)


def membership(row: Row) -> Membership:
    return Membership(row["chip_id"], row["zone_id"], tuple(json.loads(row["groups_"])))
