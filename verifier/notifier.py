"""Delivers the routed channels' queue (e-mail, Slack, HMAC webhooks) with the same backoff as
the TOML webhooks, and writes every attempt of either path to the delivery log.

A failed attempt opens a `notification_failed` alert on that destination (at most one stays
unresolved); routing keeps it off the failing destination, so the operators hear of it through
another channel. The next successful delivery there resolves it.
"""

from __future__ import annotations

import json
import logging
import time

import httpx

from verifier import channels
from verifier.alerts import Alerts
from verifier.config import VerifierConfig
from verifier.db import Db
from verifier.metrics import Metrics
from verifier.model import AlertType
from verifier.ops_model import Notification
from verifier.store import Store
from verifier.webhooks import backoff_s, deliver_forever, gives_up

logger = logging.getLogger(__name__)
_NS = 1_000_000_000


def record_attempt(store: Store, alerts: Alerts, *, destination: str, kind: str, body: bytes,
                   attempt: int, outcome: str, status_code: int | None, error: str | None,
                   now_unix_ns: int) -> None:
    """Log one attempt (`attempt` counts from 1) and open or resolve the destination's
    failure alert. Runs on the database thread, as one transaction."""
    payload = json.loads(body)
    alert_id = int(payload["alert"]["alert_id"])
    with alerts.held(), store.transaction():
        store.add_delivery(destination=destination, kind=kind, alert_id=alert_id,
                           event=payload["event"], attempt=attempt, time_unix_ns=now_unix_ns,
                           outcome=outcome, status_code=status_code, error=error)
        if outcome == "delivered":
            alerts.auto_resolve(store, AlertType.NOTIFICATION_FAILED, subject_kind="channel",
                                subject_id=destination, reason="a later delivery succeeded",
                                now_unix_ns=now_unix_ns)
        else:
            alerts.raise_alert(
                store, AlertType.NOTIFICATION_FAILED, subject_kind="channel",
                subject_id=destination,
                message=f"{kind} channel {destination} could not deliver alert {alert_id}: "
                        f"{error}",
                details={"alert_id": alert_id, "event": payload["event"], "attempt": attempt,
                         "status_code": status_code, "error": error,
                         "gave_up": outcome == "gave_up"},
                now_unix_ns=now_unix_ns)


class Notifier:
    def __init__(self, *, db: Db, config: VerifierConfig, alerts: Alerts, metrics: Metrics,
                 poll_s: float = 0.5) -> None:
        self._db = db
        self._metrics = metrics
        self._config = config
        self._alerts = alerts
        self._client = httpx.AsyncClient(timeout=config.webhook_timeout_s)
        self._poll_s = poll_s

    async def close(self) -> None:
        await self._client.aclose()

    async def run(self) -> None:
        await deliver_forever(self.deliver_due, self._poll_s, "notification")

    async def deliver_due(self, now_unix_ns: int) -> int:
        """Attempt every due notification once; returns how many were delivered."""
        delivered = 0
        for item in await self._db.run(Store.due_notifications, now_unix_ns, 100):
            channel = await self._db.run(Store.channel, item.channel_id)
            if channel is None:
                attempt = channels.Attempt(False, None, "channel no longer configured")
            elif not channel.enabled:
                attempt = channels.Attempt(False, None, "channel disabled")
            else:
                attempt = await channels.send(channel, item.body, self._client)
            kind = channel.kind if channel is not None else "unknown"
            await self._db.run(self._settle, item, kind, attempt, time.time_ns())
            delivered += attempt.delivered
        return delivered

    def _settle(self, store: Store, item: Notification, kind: str, attempt: channels.Attempt,
                now_unix_ns: int) -> None:
        with self._alerts.held(), store.transaction():
            self._settle_in_transaction(store, item, kind, attempt, now_unix_ns)

    def _settle_in_transaction(self, store: Store, item: Notification, kind: str,
                               attempt: channels.Attempt, now_unix_ns: int) -> None:
        if attempt.delivered:
            store.notification_done(item.notification_id, now_unix_ns)
            outcome = "delivered"
        else:
            give_up = gives_up(item.attempts + 1, self._config)
            delay_s = backoff_s(item.attempts, self._config.webhook_backoff_base_s)
            logger.warning("notification %s to channel %s failed (%s); %s", item.notification_id,
                           item.channel_id, attempt.error,
                           "giving up" if give_up else f"retry in {delay_s:.1f} s")
            store.notification_retry(item.notification_id, now_unix_ns + int(delay_s * _NS),
                                     give_up)
            outcome = "gave_up" if give_up else "failed"
        self._metrics.notifications.labels(kind, outcome).inc()
        record_attempt(store, self._alerts, destination=item.channel_id, kind=kind,
                       body=item.body, attempt=item.attempts + 1, outcome=outcome,
                       status_code=attempt.status_code, error=attempt.error,
                       now_unix_ns=now_unix_ns)
