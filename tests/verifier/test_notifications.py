"""Notification channels against real local servers, routing rules, mutes and their expiry,
and the delivery log (including a failing channel alerting through another one)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.verifier.conftest import Harness, open_harness
from tests.verifier.receivers import http_receiver, smtp_receiver
from verifier.model import DEFAULT_POLICY, SEVERITY_BY_TYPE, Alert, AlertFilter, AlertType
from verifier.ops_model import Channel, Membership, MuteRule, RoutingRule
from verifier.routing import channels_for, mute_for
from verifier.store import SqliteStore, Store

_NS = 1_000_000_000


async def raise_alert(h: Harness, type_: str = "went_dark", subject_id: str = "chip-1",
                      subject_kind: str = "chip", now_unix_ns: int | None = None) -> Alert:
    alert = await h.service.db.run(
        h.service.alerts.raise_alert, AlertType(type_), subject_kind=subject_kind,
        subject_id=subject_id, message=f"{subject_id} test alert", details={"why": "test"},
        now_unix_ns=now_unix_ns or time.time_ns())
    assert alert is not None
    return alert


async def deliveries(h: Harness, count: int, **query: str) -> list[dict[str, Any]]:
    """The delivery log once it holds `count` rows matching `query` (the notifier runs in
    the background; this waits for it, it does not time it)."""
    async with asyncio.timeout(30):
        while True:
            r = await h.client.get("/v1/deliveries", params=query, headers=h.dashboard)
            assert r.status_code == 200, r.text
            items: list[dict[str, Any]] = r.json()["items"]
            if len(items) >= count:
                return items
            await asyncio.sleep(0.05)


async def put(h: Harness, path: str, body: Any) -> dict[str, Any]:
    r = await h.client.put(path, json=body, headers=h.admin)
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


async def route(h: Harness, channel_id: str, **rule: Any) -> dict[str, Any]:
    r = await h.post("/v1/routing-rules", {"channel_id": channel_id, **rule})
    assert r.status_code == 200, r.text
    result: dict[str, Any] = r.json()
    return result


# -- channels against real servers --

@pytest.mark.asyncio
async def test_email_over_starttls_with_login_reaches_a_real_smtp_server(tmp_path: Path) -> None:
    async with smtp_receiver(tmp_path, login="alerts", password="s3cret") as smtp, \
            open_harness(tmp_path) as h:
        channel = await put(h, "/v1/channels/compliance-mail", {"kind": "email", "settings": {
            "host": "127.0.0.1", "port": smtp.port, "security": "starttls",
            "username": "alerts", "password": "s3cret", "from_addr": "lightfence@example.org",
            "to_addrs": ["officer@example.org"], "ca_file": str(smtp.ca_file)}})
        assert channel["settings"]["password"] is True  # shown as "set", never echoed
        assert "s3cret" not in (await h.client.get("/v1/channels", headers=h.admin)).text
        await route(h, "compliance-mail", min_severity="high")
        alert = await raise_alert(h, "outside_licensed_region")
        await smtp.wait_for(1)
        mail_from, rcpt, message, authenticated = smtp.messages[0]
        assert (mail_from, rcpt, authenticated) == ("lightfence@example.org",
                                                    ["officer@example.org"], True)
        assert message["Subject"].strip() == (
            "[Lightfence] critical: outside_licensed_region on chip chip-1 (opened)")
        assert f"alert id: {alert.alert_id}" in message.get_content()
        [row] = await deliveries(h, 1)
        assert (row["destination"], row["kind"], row["outcome"], row["status_code"],
                row["attempt"], row["alert_id"]) == ("compliance-mail", "email", "delivered",
                                                     250, 1, alert.alert_id)


@pytest.mark.asyncio
async def test_wrong_smtp_password_is_logged_with_the_servers_reply(tmp_path: Path) -> None:
    async with smtp_receiver(tmp_path, login="alerts", password="right") as smtp, \
            open_harness(tmp_path) as h:
        await put(h, "/v1/channels/mail", {"kind": "email", "settings": {
            "host": "127.0.0.1", "port": smtp.port, "username": "alerts", "password": "wrong",
            "from_addr": "lf@example.org", "to_addrs": ["o@example.org"],
            "ca_file": str(smtp.ca_file)}})
        await route(h, "mail")
        await raise_alert(h)
        [row] = await deliveries(h, 1, destination="mail")
        assert (row["outcome"], row["status_code"]) == ("failed", 535)
        assert smtp.messages == []


@pytest.mark.asyncio
async def test_slack_webhook_gets_a_readable_text(tmp_path: Path) -> None:
    with http_receiver(200) as slack:
        async with open_harness(tmp_path) as h:
            await put(h, "/v1/channels/slack-ops", {"kind": "slack",
                                                    "settings": {"url": slack.url}})
            await route(h, "slack-ops", alert_types=["went_dark"])
            await raise_alert(h, "landmark_fault", "lm-1", "landmark")  # not routed here
            await raise_alert(h, "went_dark")
            await deliveries(h, 1, destination="slack-ops")
            [payload] = slack.json_bodies()
            assert set(payload) == {"text"}
            assert payload["text"].startswith(
                "[Lightfence] high: went_dark on chip chip-1 (opened)")


@pytest.mark.asyncio
async def test_hmac_webhook_channel_is_signed_like_the_toml_webhooks(tmp_path: Path) -> None:
    with http_receiver(200) as hook:
        async with open_harness(tmp_path) as h:
            await put(h, "/v1/channels/siem", {"kind": "webhook", "settings": {
                "url": hook.url, "secret": "k3y"}})
            await route(h, "siem")
            alert = await raise_alert(h)
            await deliveries(h, 1, destination="siem")
            [(headers, body)] = hook.received
            mac = hmac.new(b"k3y", f"{headers['x-lightfence-timestamp']}.".encode() + body,
                           hashlib.sha256).hexdigest()
            assert headers["x-lightfence-signature"] == f"sha256={mac}"
            assert json.loads(body)["alert"]["alert_id"] == alert.alert_id


@pytest.mark.asyncio
async def test_bad_channel_settings_are_refused_and_nothing_is_stored(tmp_path: Path) -> None:
    async with open_harness(tmp_path) as h:
        cases = [
            ({"kind": "webhook", "settings": {"url": "http://127.0.0.1:9/x", "secret": ""}},
             "'secret' must be a non-empty string"),
            ({"kind": "email", "settings": {"host": "h", "security": "none", "username": "u",
                                            "password": "p", "from_addr": "a@b",
                                            "to_addrs": ["c@d"]}},
             "refusing to send an SMTP password without TLS"),
            ({"kind": "email", "settings": {"host": "h", "from_addr": "a@b", "to_addrs": []}},
             "'to_addrs' must be a non-empty list"),
            ({"kind": "slack", "settings": {"url": "ftp://x", "extra": 1}},
             "unknown slack channel settings: ['extra']"),
            ({"kind": "slack", "settings": {"url": "ftp://x"}}, "must be an http(s) URL"),
        ]
        for body, reason in cases:
            r = await h.client.put("/v1/channels/bad", json=body, headers=h.admin)
            assert r.status_code == 422 and reason in r.json()["detail"], (body, r.text)
        assert (await h.client.get("/v1/channels", headers=h.admin)).json() == {"items": []}
        r = await h.post("/v1/routing-rules", {"channel_id": "bad"})
        assert r.status_code == 404


# -- routing rules --

def _rule(channel_id: str, **fields: Any) -> RoutingRule:
    values: dict[str, Any] = {"alert_types": (), "min_severity": "low", "groups": (),
                              "zones": ()}
    values.update(fields)
    return RoutingRule(1, channel_id, values["alert_types"], values["min_severity"],
                       values["groups"], values["zones"])


def test_routing_by_type_severity_group_and_zone() -> None:
    rules = [_rule("everything"), _rule("critical-only", min_severity="critical"),
             _rule("dark", alert_types=("went_dark",)),
             _rule("gpu-team", groups=("training",)), _rule("frankfurt", zones=("fra-1",)),
             _rule("disabled")]
    chans = [Channel(r.channel_id, "slack", {}, r.channel_id != "disabled") for r in rules]
    in_fra = Membership("c1", "fra-1", ("inference", "training"))
    in_ams = Membership("c2", "ams-1", ("inference",))

    def to(alert_type: str, membership: Membership | None) -> tuple[str, ...]:
        return channels_for(rules, chans, alert_type=alert_type,
                            severity=SEVERITY_BY_TYPE[alert_type], membership=membership)

    assert to("outside_licensed_region", in_fra) == ("critical-only", "everything",
                                                     "frankfurt", "gpu-team")
    assert to("went_dark", in_ams) == ("dark", "everything")
    assert to("landmark_suspect", None) == ("everything",)
    assert channels_for(rules, chans, alert_type="went_dark", severity="high",
                        membership=in_ams, exclude="everything") == ("dark",)


def test_every_alert_type_has_a_documented_severity() -> None:
    doc = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    for alert_type, severity in SEVERITY_BY_TYPE.items():
        assert f"| `{alert_type}` | {severity} |" in doc, alert_type


@pytest.mark.asyncio
async def test_zone_and_group_routing_end_to_end(tmp_path: Path) -> None:
    with http_receiver(200) as fra, http_receiver(200) as training:
        async with open_harness(tmp_path) as h:
            for chip_id in ("chip-a", "chip-b"):
                r = await h.post("/v1/chips", h.fleet.chip_body(chip_id, {"allowed": ["DEU"]}))
                assert r.status_code == 200, r.text
            await put(h, "/v1/zones/fra-1", {"name": "Frankfurt 1", "lat_deg": 50.1,
                                             "lon_deg": 8.7})
            await put(h, "/v1/chips/chip-a/membership", {"zone_id": "fra-1"})
            await put(h, "/v1/chips/chip-b/membership", {"groups": ["training"]})
            await put(h, "/v1/channels/fra", {"kind": "slack", "settings": {"url": fra.url}})
            await put(h, "/v1/channels/training", {"kind": "slack",
                                                   "settings": {"url": training.url}})
            await route(h, "fra", zones=["fra-1"])
            await route(h, "training", groups=["training"])
            await raise_alert(h, subject_id="chip-a")
            await raise_alert(h, subject_id="chip-b")
            rows = await deliveries(h, 2)
            assert sorted((r["destination"], r["alert_id"]) for r in rows) == [
                ("fra", 1), ("training", 2)]
            assert "chip-a" in fra.json_bodies()[0]["text"]
            assert "chip-b" in training.json_bodies()[0]["text"]


# -- delivery log on failure --

@pytest.mark.asyncio
async def test_a_failing_channel_is_logged_and_alerts_through_another(tmp_path: Path) -> None:
    with http_receiver(503, 200) as broken, http_receiver(200) as backup:
        async with open_harness(tmp_path, webhook_backoff_base_s=0.2) as h:
            await put(h, "/v1/channels/primary", {"kind": "webhook", "settings": {
                "url": broken.url, "secret": "k"}})
            await put(h, "/v1/channels/backup", {"kind": "slack", "settings": {
                "url": backup.url}})
            await route(h, "primary")
            await route(h, "backup", alert_types=["notification_failed"])
            alert = await raise_alert(h)
            failed = await deliveries(h, 1, destination="primary", outcome="failed")
            assert (failed[0]["status_code"], failed[0]["error"], failed[0]["attempt"]) == (
                503, "HTTP 503", 1)
            # The failure alert went out through the backup channel, not the broken one.
            await deliveries(h, 1, destination="backup")
            assert "notification_failed on channel primary" in backup.json_bodies()[0]["text"]
            # The retry succeeds; the failure alert resolves (and that change is routed too).
            ok = await deliveries(h, 1, destination="primary", outcome="delivered")
            assert (ok[0]["attempt"], ok[0]["alert_id"]) == (2, alert.alert_id)
            r = await h.client.get("/v1/alerts", params={"type": "notification_failed"},
                                   headers=h.dashboard)
            [failure] = r.json()["items"]
            assert (failure["subject_kind"], failure["subject_id"], failure["status"]) == (
                "channel", "primary", "resolved")
            assert all(json.loads(body)["alert"]["type"] == "went_dark"
                       for _, body in broken.received)
            metrics = (await h.client.get("/metrics")).text
            assert ('lightfence_notification_attempts_total{kind="webhook",outcome="failed"} 1.0'
                    in metrics)


@pytest.mark.asyncio
async def test_a_channel_slower_than_webhook_timeout_s_is_a_failed_attempt(
        tmp_path: Path) -> None:
    # The channel notifier used a fixed 10 s timeout, so a receiver that hangs for 3 s was
    # "delivered" whatever webhook_timeout_s said.
    with http_receiver(200, answer_after_s=3.0) as slow:
        async with open_harness(tmp_path, webhook_timeout_s=0.5,
                                webhook_backoff_base_s=60.0) as h:
            await put(h, "/v1/channels/slow", {"kind": "slack", "settings": {"url": slow.url}})
            await route(h, "slow")
            await raise_alert(h)
            [failed] = await deliveries(h, 1, destination="slow")
            assert (failed["outcome"], failed["status_code"], failed["attempt"]) == (
                "failed", None, 1)
            assert failed["error"].startswith("ReadTimeout")


@pytest.mark.asyncio
async def test_toml_webhook_attempts_are_in_the_delivery_log(tmp_path: Path) -> None:
    from verifier.config import WebhookConfig
    from verifier.routing import config_webhook_label

    with http_receiver(500, 200) as hook:
        async with open_harness(tmp_path, webhook_backoff_base_s=0.2,
                                webhooks=(WebhookConfig(hook.url, "k"),)) as h:
            await raise_alert(h)
            rows = await deliveries(h, 2, destination=config_webhook_label(hook.url))
            assert [(r["outcome"], r["status_code"], r["attempt"]) for r in rows] == [
                ("delivered", 200, 2), ("failed", 500, 1)]
            assert hook.url not in (await h.client.get("/v1/deliveries",
                                                       headers=h.dashboard)).text


# -- mutes --

def test_mute_matches_every_given_field_until_it_expires() -> None:
    now = 1_000 * _NS
    rule = MuteRule(7, "maintenance", None, None, "fra-1", None, "went_dark", "ops", now,
                    now + 3600 * _NS)
    in_fra = Membership("c1", "fra-1", ())

    def muted(alert_type: str, membership: Membership | None, at: int) -> bool:
        return mute_for([rule], alert_type=alert_type, subject_kind="chip", subject_id="c1",
                        membership=membership, now_unix_ns=at) is not None

    assert muted("went_dark", in_fra, now)
    assert not muted("outside_licensed_region", in_fra, now)  # another type
    assert not muted("went_dark", Membership("c1", "ams-1", ()), now)  # another zone
    assert not muted("went_dark", None, now)
    assert not muted("went_dark", in_fra, now + 3600 * _NS)  # expired


def test_muted_alert_is_recorded_but_not_queued_and_expiry_restores_notifying(
        tmp_path: Path, store: Store) -> None:
    from verifier.alerts import Alerts
    from verifier.evidence_sink import EvidenceSink
    from verifier.hub import Hub
    from verifier.metrics import Metrics
    from verifier.translog import TransparencyLog

    evidence = EvidenceSink(TransparencyLog(store), b"")
    alerts = Alerts(webhook_urls=("http://toml-hook",), hub=Hub(), metrics=Metrics(),
                    evidence=evidence)
    store.put_channel(Channel("mail", "slack", {"url": "http://x"}, True))
    store.add_routing_rule("mail", alert_types=(), min_severity="low", groups=(), zones=())
    now = time.time_ns()
    mute = store.add_mute(reason="planned maintenance", chip_id="chip-1", group=None, zone=None,
                          landmark_id=None, alert_type=None, created_by="operator-t",
                          created_unix_ns=now, expires_unix_ns=now + 60 * _NS)
    with evidence.leading():  # as the leader's tick: straight into the log
        muted = alerts.raise_alert(store, AlertType.WENT_DARK, subject_kind="chip",
                                   subject_id="chip-1", message="dark", details={},
                                   now_unix_ns=now + 1)
    assert muted is not None and muted.muted_by_rule == mute.rule_id
    assert store.due_notifications(now + 2 * 60 * _NS, 10) == []
    assert store.due_outbox(now + 2 * 60 * _NS, 10) == []
    log = evidence.log
    assert log is not None
    logged = json.loads(log.entry(log.size - 1).entry)
    assert logged["alert"]["muted_by_rule"] == mute.rule_id  # logged as evidence
    # After the expiry the same chip's next alert is notified (TOML webhook and channel).
    after = alerts.raise_alert(store, AlertType.OUTSIDE_LICENSED_REGION, subject_kind="chip",
                               subject_id="chip-1", message="out", details={},
                               now_unix_ns=now + 61 * _NS)
    assert after is not None and after.muted_by_rule is None
    assert [n.alert_id for n in store.due_notifications(now + 62 * _NS, 10)] == [after.alert_id]
    assert len(store.due_outbox(now + 62 * _NS, 10)) == 1
    evidence.close()


@pytest.mark.asyncio
async def test_mutes_through_the_api(tmp_path: Path) -> None:
    async with open_harness(tmp_path) as h:
        operator = await h.token("operator")
        now = time.time_ns()
        body = {"reason": "rack move", "zone": "fra-1", "expires_unix_ns": now + 3600 * _NS}
        r = await h.client.post("/v1/mutes", json=body, headers=operator)
        assert r.status_code == 200, r.text
        assert (r.json()["created_by"], r.json()["active"]) == ("operator-t", True)
        refused = [
            ({"reason": "x", "expires_unix_ns": now + _NS}, "needs a scope"),
            ({"reason": "x", "chip_id": "c", "expires_unix_ns": now - _NS}, "not in the future"),
            ({"reason": "x", "chip_id": "c", "expires_unix_ns": now + 10**18},
             "at most 90 days"),
        ]
        for bad, reason in refused:
            r = await h.client.post("/v1/mutes", json=bad, headers=operator)
            assert r.status_code == 422 and reason in r.json()["detail"], r.text
        assert (await h.client.post("/v1/mutes", json=body, headers=h.dashboard)).status_code \
            == 403
        listed = (await h.client.get("/v1/mutes?active=true", headers=h.dashboard)).json()
        assert [m["reason"] for m in listed["items"]] == ["rack move"]
        rule_id = listed["items"][0]["rule_id"]
        assert (await h.client.delete(f"/v1/mutes/{rule_id}", headers=operator)).status_code \
            == 204
        assert (await h.client.get("/v1/mutes", headers=h.dashboard)).json()["items"] == []


# -- invariants and upgrades --

_ids = st.sampled_from(["a", "b", "c", "d"])
_rules = st.builds(
    RoutingRule, rule_id=st.integers(1, 9), channel_id=_ids,
    alert_types=st.lists(st.sampled_from(sorted(SEVERITY_BY_TYPE)), max_size=2).map(tuple),
    min_severity=st.sampled_from(["low", "medium", "high", "critical"]),
    groups=st.lists(_ids, max_size=2).map(tuple), zones=st.lists(_ids, max_size=2).map(tuple))


@given(rules=st.lists(_rules, max_size=6), enabled=st.sets(_ids),
       alert_type=st.sampled_from(sorted(SEVERITY_BY_TYPE)), exclude=st.none() | _ids,
       zone=st.none() | _ids, groups=st.lists(_ids, max_size=2))
def test_routing_never_picks_an_excluded_disabled_or_unmatched_channel(
        rules: list[RoutingRule], enabled: set[str], alert_type: str, *, exclude: str | None,
        zone: str | None, groups: list[str]) -> None:
    chans = [Channel(c, "slack", {}, c in enabled) for c in "abcd"]
    member = Membership("chip", zone, tuple(groups))
    severity = SEVERITY_BY_TYPE[alert_type]
    chosen = channels_for(rules, chans, alert_type=alert_type, severity=severity,
                          membership=member, exclude=exclude)
    assert list(chosen) == sorted(set(chosen))
    for channel_id in chosen:
        assert channel_id in enabled and channel_id != exclude
        assert any(r.channel_id == channel_id and (not r.zones or zone in r.zones)
                   and (not r.groups or set(r.groups) & set(groups)) for r in rules)


@given(expires=st.integers(0, 10**6), now=st.integers(0, 10**6))
def test_an_expired_mute_never_silences(expires: int, now: int) -> None:
    rule = MuteRule(1, "r", "c1", None, None, None, None, "ops", 0, expires)
    found = mute_for([rule], alert_type="went_dark", subject_kind="chip", subject_id="c1",
                     membership=None, now_unix_ns=now)
    assert (found is not None) == (now < expires)


def test_a_database_from_before_operations_upgrades_in_place(tmp_path: Path) -> None:
    import sqlite3

    path = tmp_path / "v.sqlite3"
    store = SqliteStore(path)
    store.open_alert("went_dark", severity="high", subject_kind="chip", subject_id="c1",
                     message="m", details={}, now_unix_ns=1, outbox=[])
    store.close()
    old = sqlite3.connect(path)  # make it look like a database written before this release
    old.execute("ALTER TABLE alerts DROP COLUMN muted_by_rule")
    old.execute("DROP TABLE schema_version")  # versioning came after operations
    # ... and so did migration 6 (the location alerts' policy fields and learned baselines)
    for column in DEFAULT_POLICY.alert_margins:
        old.execute(f"ALTER TABLE policies DROP COLUMN {column}")
    old.execute("DROP TABLE rtt_baselines")
    for table in ("channels", "routing_rules", "mute_rules", "notifications", "deliveries",
                  "zones", "chip_membership"):
        old.execute(f"DROP TABLE {table}")
    old.commit()
    old.close()
    store = SqliteStore(path)
    try:
        [alert] = store.alerts(AlertFilter())
        assert (alert.subject_id, alert.muted_by_rule) == ("c1", None)
        assert store.channels() == [] and store.mutes(None) == []
        assert store.rtt_baselines("c1") == []
    finally:
        store.close()


@pytest.mark.asyncio
async def test_an_unreachable_channel_is_retried_then_given_up_in_the_log(
        tmp_path: Path) -> None:
    import socket

    with socket.socket() as free:  # a port nobody listens on: connection refused
        free.bind(("127.0.0.1", 0))
        closed = free.getsockname()[1]
    async with open_harness(tmp_path, webhook_backoff_base_s=0.05,
                            webhook_max_attempts=2) as h:
        await put(h, "/v1/channels/down", {"kind": "webhook", "settings": {
            "url": f"http://127.0.0.1:{closed}/hook", "secret": "k"}})
        await route(h, "down", alert_types=["went_dark"])
        alert = await raise_alert(h)
        rows = await deliveries(h, 2, destination="down")
        assert [(r["attempt"], r["outcome"], r["status_code"]) for r in rows] == [
            (2, "gave_up", None), (1, "failed", None)]
        assert all(r["alert_id"] == alert.alert_id and "ConnectError" in r["error"]
                   for r in rows)
        [failure] = (await h.client.get("/v1/alerts", params={"type": "notification_failed"},
                                        headers=h.dashboard)).json()["items"]
        assert (failure["subject_id"], failure["status"]) == ("down", "open")
