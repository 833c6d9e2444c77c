"""Operations routes: notification channels and routing (admin), mutes (operator), the
delivery log (read), zones and chip membership (admin to change, read to list)."""

from __future__ import annotations

import time
from typing import Annotated

from fastapi import APIRouter, Path, Query, Response

from verifier import operations, schemas
from verifier import schemas_ops as s
from verifier.channels import public_settings
from verifier.deps import Admin, Operator, Reader, ServiceDep
from verifier.ops_model import Channel, Membership, MuteRule, RoutingRule, Zone
from verifier.store import Store

router = APIRouter(prefix="/v1", tags=["operations"])
IdPath = Annotated[str, Path(pattern=schemas.ID_PATTERN)]
RuleId = Annotated[int, Path(ge=1, le=2**62)]


def _channel_out(c: Channel) -> s.ChannelOut:
    return s.ChannelOut(channel_id=c.channel_id, kind=c.kind,  # type: ignore[arg-type]
                        settings=public_settings(c), enabled=c.enabled)


def _rule_out(r: RoutingRule) -> s.RoutingRuleOut:
    return s.RoutingRuleOut(rule_id=r.rule_id, channel_id=r.channel_id,
                            alert_types=list(r.alert_types),
                            min_severity=r.min_severity,  # type: ignore[arg-type]
                            groups=list(r.groups), zones=list(r.zones))


def _mute_out(m: MuteRule, now_unix_ns: int) -> s.MuteOut:
    return s.MuteOut(rule_id=m.rule_id, reason=m.reason, chip_id=m.chip_id, group=m.group,
                     zone=m.zone, landmark_id=m.landmark_id, alert_type=m.alert_type,
                     created_by=m.created_by, created_unix_ns=m.created_unix_ns,
                     expires_unix_ns=m.expires_unix_ns,
                     active=m.expires_unix_ns > now_unix_ns)


# -- channels and routing (admin) --

@router.get("/channels", response_model=s.ChannelsOut)
async def list_channels(_: Reader, service: ServiceDep) -> s.ChannelsOut:
    return s.ChannelsOut(items=[_channel_out(c) for c in await service.db.run(Store.channels)])


@router.put("/channels/{channel_id}", response_model=s.ChannelOut)
async def put_channel(channel_id: IdPath, body: s.ChannelIn, _: Admin,
                      service: ServiceDep) -> s.ChannelOut:
    channel = await service.db.run(operations.put_channel, channel_id, body.kind,
                                   body.settings, body.enabled)
    return _channel_out(channel)


@router.delete("/channels/{channel_id}", status_code=204, response_class=Response)
async def delete_channel(channel_id: IdPath, _: Admin, service: ServiceDep) -> Response:
    await service.db.run(operations.delete_channel, channel_id)
    return Response(status_code=204)


@router.get("/routing-rules", response_model=s.RoutingRulesOut)
async def list_routing_rules(_: Reader, service: ServiceDep) -> s.RoutingRulesOut:
    return s.RoutingRulesOut(items=[_rule_out(r)
                                    for r in await service.db.run(Store.routing_rules)])


@router.post("/routing-rules", response_model=s.RoutingRuleOut)
async def add_routing_rule(body: s.RoutingRuleIn, _: Admin,
                           service: ServiceDep) -> s.RoutingRuleOut:
    rule = await service.db.run(operations.add_routing_rule, body.channel_id,
                                alert_types=body.alert_types, min_severity=body.min_severity,
                                groups=body.groups, zones=body.zones)
    return _rule_out(rule)


@router.delete("/routing-rules/{rule_id}", status_code=204, response_class=Response)
async def delete_routing_rule(rule_id: RuleId, _: Admin, service: ServiceDep) -> Response:
    await service.db.run(operations.delete_routing_rule, rule_id)
    return Response(status_code=204)


# -- mutes (operator) --

@router.get("/mutes", response_model=s.MutesOut)
async def list_mutes(_: Reader, service: ServiceDep,
                     active: Annotated[bool, Query()] = False) -> s.MutesOut:
    now = time.time_ns()
    rows = await service.db.run(Store.mutes, now if active else None)
    return s.MutesOut(items=[_mute_out(m, now) for m in rows])


@router.post("/mutes", response_model=s.MuteOut)
async def add_mute(body: s.MuteIn, token: Operator, service: ServiceDep) -> s.MuteOut:
    now = time.time_ns()
    rule = await service.db.run(
        operations.add_mute, reason=body.reason, chip_id=body.chip_id, group=body.group,
        zone=body.zone, landmark_id=body.landmark_id, alert_type=body.alert_type,
        by=token.label, expires_unix_ns=body.expires_unix_ns, now_unix_ns=now)
    return _mute_out(rule, now)


@router.delete("/mutes/{rule_id}", status_code=204, response_class=Response)
async def delete_mute(rule_id: RuleId, _: Operator, service: ServiceDep) -> Response:
    await service.db.run(operations.delete_mute, rule_id)
    return Response(status_code=204)


# -- the delivery log (read) --

@router.get("/deliveries", response_model=s.DeliveriesOut)
async def list_deliveries(
    _: Reader, service: ServiceDep,
    destination: Annotated[str | None, Query(pattern=schemas.ID_PATTERN)] = None,
    outcome: Annotated[str | None, Query(pattern="^(delivered|failed|gave_up)$")] = None,
    cursor: Annotated[str | None, Query(pattern=r"^[0-9]{1,18}$")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> s.DeliveriesOut:
    rows = await service.db.run(Store.deliveries, destination=destination, outcome=outcome,
                                before_id=int(cursor) if cursor else None, limit=limit)
    next_cursor = str(rows[-1].delivery_id) if len(rows) == limit else None
    return s.DeliveriesOut(items=[s.DeliveryOut.model_validate(d, from_attributes=True)
                                  for d in rows], next_cursor=next_cursor)


# -- zones and membership --

@router.get("/zones", response_model=s.ZonesOut)
async def list_zones(_: Reader, service: ServiceDep) -> s.ZonesOut:
    def load(store: Store) -> tuple[list[Zone], dict[str, operations.ZoneStats],
                                    operations.ZoneStats]:
        by_zone, unzoned = operations.zone_stats(store)
        return store.zones(), by_zone, unzoned

    zones, by_zone, unzoned = await service.db.run(load)
    return s.ZonesOut(
        items=[s.ZoneOut(zone_id=z.zone_id, name=z.name, lat_deg=z.lat_deg, lon_deg=z.lon_deg,
                         licence=z.licence, chips=by_zone[z.zone_id].chips,
                         chips_by_state=by_zone[z.zone_id].chips_by_state,
                         verified_share=by_zone[z.zone_id].verified_share) for z in zones],
        unzoned=s.ZoneStatsOut(chips=unzoned.chips, chips_by_state=unzoned.chips_by_state,
                               verified_share=unzoned.verified_share))


@router.put("/zones/{zone_id}", response_model=s.ZoneOut)
async def put_zone(zone_id: IdPath, body: s.ZoneIn, _: Admin, service: ServiceDep) -> s.ZoneOut:
    zone = await service.db.run(operations.put_zone, Zone(zone_id, body.name, body.lat_deg,
                                                          body.lon_deg, body.licence))
    by_zone, _unzoned = await service.db.run(operations.zone_stats)
    stats = by_zone[zone_id]
    return s.ZoneOut(zone_id=zone.zone_id, name=zone.name, lat_deg=zone.lat_deg,
                     lon_deg=zone.lon_deg, licence=zone.licence, chips=stats.chips,
                     chips_by_state=stats.chips_by_state, verified_share=stats.verified_share)


@router.put("/chips/{chip_id}/membership", response_model=s.MembershipOut)
async def set_membership(chip_id: IdPath, body: s.MembershipIn, _: Admin,
                         service: ServiceDep) -> s.MembershipOut:
    membership: Membership = await service.db.run(
        operations.set_membership, chip_id, zone_id=body.zone_id, groups=body.groups,
        apply_zone_licence=body.apply_zone_licence)
    return s.MembershipOut(chip_id=membership.chip_id, zone_id=membership.zone_id,
                           groups=list(membership.groups))

