"""`lightfence verifier channel|route|mute …`: notification set-up from the verifier host.

These write the verifier database directly (as `verifier token` does), through the same domain
functions as the admin API, so the same checks apply; the running verifier reads channels,
rules and mutes at each alert, so no restart is needed.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from verifier import operations
from verifier.channels import public_settings
from verifier.cli_store import store_command
from verifier.errors import VerifierError
from verifier.ops_model import CHANNEL_KINDS
from verifier.routing import SEVERITY_RANK
from verifier.store import Store

_NS = 1_000_000_000


def register(sub: Any) -> None:
    channel = sub.add_parser("channel", help="notification channels (e-mail, Slack, webhook)")
    _common(channel)
    csub = channel.add_subparsers(dest="channel_command", metavar="ACTION", required=True)
    put = csub.add_parser("set", help="create or replace a channel")
    put.add_argument("channel_id")
    put.add_argument("--kind", choices=CHANNEL_KINDS, required=True)
    put.add_argument("--settings", type=Path, required=True,
                     help="JSON file with the kind's settings (docs/operations.md)")
    put.add_argument("--disabled", action="store_true", help="store it but send nothing")
    put.set_defaults(handler=store_command(_channel_set))
    csub.add_parser("list", help="channels, secrets hidden").set_defaults(
        handler=store_command(_channel_list))
    delete = csub.add_parser("delete", help="remove a channel and its routing rules")
    delete.add_argument("channel_id")
    delete.set_defaults(handler=store_command(_channel_delete))

    route = sub.add_parser("route", help="routing rules: which alerts go to which channel")
    _common(route)
    rsub = route.add_subparsers(dest="route_command", metavar="ACTION", required=True)
    add = rsub.add_parser("add", help="add a rule (empty lists match anything)")
    add.add_argument("channel_id")
    add.add_argument("--type", dest="alert_types", action="append", default=[])
    add.add_argument("--min-severity", choices=tuple(SEVERITY_RANK), default="low")
    add.add_argument("--group", dest="groups", action="append", default=[])
    add.add_argument("--zone", dest="zones", action="append", default=[])
    add.set_defaults(handler=store_command(_route_add))
    rsub.add_parser("list").set_defaults(handler=store_command(_route_list))
    rdel = rsub.add_parser("delete")
    rdel.add_argument("rule_id", type=int)
    rdel.set_defaults(handler=store_command(_route_delete))

    mute = sub.add_parser("mute", help="mute rules: silence notifications, keep the record")
    _common(mute)
    msub = mute.add_subparsers(dest="mute_command", metavar="ACTION", required=True)
    madd = msub.add_parser("add", help="mute matching alerts for a while")
    madd.add_argument("--reason", required=True)
    madd.add_argument("--for-s", type=float, required=True, help="duration in seconds")
    madd.add_argument("--by", default="cli", help="who mutes (recorded)")
    for scope in ("chip-id", "group", "zone", "landmark-id", "alert-type"):
        madd.add_argument(f"--{scope}")
    madd.set_defaults(handler=store_command(_mute_add))
    msub.add_parser("list", help="active mute rules").set_defaults(
        handler=store_command(_mute_list))


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", type=Path, required=True, help="verifier TOML file")
    parser.add_argument("--data-dir", type=Path, help="override the data directory")
    parser.add_argument("--database-url", help="override database_url (postgresql://...)")


def _channel_set(store: Store, args: argparse.Namespace) -> Any:
    settings = json.loads(args.settings.read_text(encoding="utf-8"))
    if not isinstance(settings, dict):
        raise VerifierError("the settings file must hold a JSON object")
    channel = operations.put_channel(store, args.channel_id, args.kind, settings,
                                     not args.disabled)
    return {"channel_id": channel.channel_id, "kind": channel.kind,
            "settings": public_settings(channel), "enabled": channel.enabled}


def _channel_list(store: Store, args: argparse.Namespace) -> Any:
    return [{"channel_id": c.channel_id, "kind": c.kind, "settings": public_settings(c),
             "enabled": c.enabled} for c in store.channels()]


def _channel_delete(store: Store, args: argparse.Namespace) -> Any:
    operations.delete_channel(store, args.channel_id)
    return {"deleted": args.channel_id}


def _route_add(store: Store, args: argparse.Namespace) -> Any:
    rule = operations.add_routing_rule(store, args.channel_id, alert_types=args.alert_types,
                                       min_severity=args.min_severity, groups=args.groups,
                                       zones=args.zones)
    return _rule_json(rule)


def _rule_json(rule: Any) -> dict[str, Any]:
    return {"rule_id": rule.rule_id, "channel_id": rule.channel_id,
            "alert_types": list(rule.alert_types), "min_severity": rule.min_severity,
            "groups": list(rule.groups), "zones": list(rule.zones)}


def _route_list(store: Store, args: argparse.Namespace) -> Any:
    return [_rule_json(r) for r in store.routing_rules()]


def _route_delete(store: Store, args: argparse.Namespace) -> Any:
    operations.delete_routing_rule(store, args.rule_id)
    return {"deleted": args.rule_id}


def _mute_add(store: Store, args: argparse.Namespace) -> Any:
    now = time.time_ns()
    rule = operations.add_mute(store, reason=args.reason, chip_id=args.chip_id, group=args.group,
                               zone=args.zone, landmark_id=args.landmark_id,
                               alert_type=args.alert_type, by=args.by,
                               expires_unix_ns=now + int(args.for_s * _NS), now_unix_ns=now)
    return {"rule_id": rule.rule_id, "expires_unix_ns": rule.expires_unix_ns}


def _mute_list(store: Store, args: argparse.Namespace) -> Any:
    return [{"rule_id": m.rule_id, "reason": m.reason, "chip_id": m.chip_id, "group": m.group,
             "zone": m.zone, "landmark_id": m.landmark_id, "alert_type": m.alert_type,
             "created_by": m.created_by, "expires_unix_ns": m.expires_unix_ns}
            for m in store.mutes(time.time_ns())]
