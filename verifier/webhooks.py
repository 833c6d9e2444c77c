"""Webhook delivery from the persisted outbox: HMAC-SHA256 signed, exponential backoff.

Outbox rows are written in the same transaction as the alert change, so a crash never loses a
notification; delivery is at-least-once (receivers dedupe on alert id + status).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import httpx

from verifier.config import VerifierConfig
from verifier.db import Db
from verifier.metrics import Metrics
from verifier.model import OutboxItem
from verifier.routing import config_webhook_label
from verifier.store import Store

if TYPE_CHECKING:
    from verifier.alerts import Alerts

logger = logging.getLogger(__name__)


async def deliver_forever(
    deliver_due: Callable[[int], Awaitable[int]], poll_s: float, what: str
) -> None:
    """The outbox poll loop of webhooks and notification channels: one failed pass is logged
    and the next one runs, so a bad row or a broken peer never stops delivery."""
    while True:
        try:
            await deliver_due(time.time_ns())
        except Exception:
            logger.exception("%s delivery pass failed", what)
        await asyncio.sleep(poll_s)
_NS = 1_000_000_000
_MAX_BACKOFF_S = 3_600.0
_CLAIM_SLACK_S = 30.0  # beyond the attempt timeout, for a slow database write of the outcome


def signature_header(secret: str, timestamp_s: int, body: bytes) -> str:
    """`sha256=<hex>` over "<timestamp>." + body; the timestamp lets receivers refuse replays."""
    mac = hmac.new(secret.encode("utf-8"), f"{timestamp_s}.".encode() + body, hashlib.sha256)
    return "sha256=" + mac.hexdigest()


def backoff_s(attempts: int, base_s: float) -> float:
    return float(min(_MAX_BACKOFF_S, base_s * 2 ** attempts))


def gives_up(attempts_done: int, config: VerifierConfig) -> bool:
    """Whether a notification that has now failed `attempts_done` times is abandoned: the one
    retry rule for TOML webhooks and channels alike (verifier.notifier). By default never: the
    contract is "until a 2xx" (backoff capped at an hour; each attempt bounded by
    `webhook_timeout_s`); a positive `webhook_max_attempts` caps the attempts."""
    return 0 < config.webhook_max_attempts <= attempts_done


class WebhookSender:
    def __init__(self, *, db: Db, config: VerifierConfig, metrics: Metrics,
                 alerts: Alerts | None = None, poll_s: float = 0.5) -> None:
        self._db = db
        self._alerts = alerts  # for the delivery log and failure alerts (verifier.notifier)
        self._config = config
        self._metrics = metrics
        self._secrets = {h.url: h.secret for h in config.webhooks}
        self._client = httpx.AsyncClient(timeout=config.webhook_timeout_s)
        self._poll_s = poll_s

    async def close(self) -> None:
        await self._client.aclose()

    async def run(self) -> None:
        await deliver_forever(self.deliver_due, self._poll_s, "webhook")

    async def deliver_due(self, now_unix_ns: int) -> int:
        """Attempt every due outbox item once; returns how many were delivered."""
        if not self._secrets:
            return 0
        delivered = 0
        # Claimed past one attempt's timeout, so no other replica sends the same item meanwhile.
        claim_until = now_unix_ns + int((self._config.webhook_timeout_s + _CLAIM_SLACK_S) * _NS)
        for item in await self._db.run(Store.claim_outbox, now_unix_ns, 100, claim_until):
            secret = self._secrets.get(item.url)
            error = "webhook no longer configured"
            status_code: int | None = None
            if secret is not None:
                timestamp_s = int(time.time())
                try:
                    response = await self._client.post(item.url, content=item.body, headers={
                        "Content-Type": "application/json",
                        "X-Lightfence-Timestamp": str(timestamp_s),
                        "X-Lightfence-Signature": signature_header(secret, timestamp_s,
                                                                   item.body)})
                    status_code = response.status_code
                    if response.is_success:
                        await self._db.run(Store.outbox_done, item.outbox_id, time.time_ns())
                        await self._log(item, "delivered", status_code, None)
                        delivered += 1
                        continue
                    error = f"HTTP {response.status_code}"
                except httpx.HTTPError as exc:
                    error = f"{type(exc).__name__}: {exc}"
            self._metrics.webhook_failures.inc()
            give_up = gives_up(item.attempts + 1, self._config)
            delay_s = backoff_s(item.attempts, self._config.webhook_backoff_base_s)
            logger.warning("webhook %s to %s failed (%s); %s", item.outbox_id, item.url, error,
                           "giving up" if give_up else f"retry in {delay_s:.1f} s")
            await self._db.run(Store.outbox_retry, item.outbox_id,
                               time.time_ns() + int(delay_s * _NS), error, give_up)
            await self._log(item, "gave_up" if give_up else "failed", status_code, error)
        return delivered

    async def _log(self, item: OutboxItem, outcome: str, status_code: int | None,
                   error: str | None) -> None:
        self._metrics.notifications.labels("webhook", outcome).inc()
        if self._alerts is None:
            return
        from verifier.notifier import record_attempt

        await self._db.run(record_attempt, self._alerts,
                           destination=config_webhook_label(item.url), kind="webhook",
                           body=item.body, attempt=item.attempts + 1, outcome=outcome,
                           status_code=status_code, error=error, now_unix_ns=time.time_ns())
