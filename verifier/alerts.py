"""Alerts: open (at most one unresolved per subject and type), acknowledge, resolve.

Every change is written together with its notifications (TOML webhooks' outbox rows and the
routed channels' queue, `verifier.routing`) and its evidence-log entry (`verifier.evidence_sink`)
in one transaction, then published to SSE subscribers. A matching mute rule drops the notifications
only: the alert is still stored, streamed and logged as evidence, marked `muted_by_rule`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from verifier import routing
from verifier.errors import ConflictError, NotFoundError
from verifier.evidence_sink import EvidenceSink
from verifier.hub import Hub
from verifier.metrics import Metrics
from verifier.model import SEVERITY_BY_TYPE, Alert, AlertType
from verifier.store import Store

logger = logging.getLogger(__name__)


class Alerts:
    def __init__(self, *, webhook_urls: tuple[str, ...], hub: Hub, metrics: Metrics,
                 evidence: EvidenceSink) -> None:
        self._urls = webhook_urls
        self._hub = hub
        self._metrics = metrics
        self._evidence = evidence
        # Announcements held until their transaction commits (database thread only).
        self._held: list[list[Alert]] = []

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold SSE announcements made inside until the block ends without error; an
        error drops them, so no subscriber hears of an alert its rolled-back transaction undid.
        Wrap a store transaction in this (outermost) so announcements follow the COMMIT."""
        self._held.append([])
        try:
            yield
        except BaseException:
            self._held.pop()
            raise
        done = self._held.pop()
        if self._held:
            self._held[-1].extend(done)
        else:
            for alert in done:
                self._announce(alert)

    def raise_alert(self, store: Store, type_: AlertType, *, subject_kind: str, subject_id: str,
                    message: str, details: dict[str, Any], now_unix_ns: int) -> Alert | None:
        """Open an alert; None when one is already unresolved for this subject and type."""
        severity = SEVERITY_BY_TYPE[type_]
        with store.transaction():
            muted, urls = self._mute_and_urls(store, type_, subject_kind, subject_id,
                                              now_unix_ns)
            alert = store.open_alert(type_, severity=severity, subject_kind=subject_kind,
                                     subject_id=subject_id, message=message, details=details,
                                     now_unix_ns=now_unix_ns, outbox=urls)
            if alert is None:
                return None
            alert = self._notify(store, alert, "alert.opened", muted, now_unix_ns)
            self._log_evidence(store, alert)
        logger.warning("alert %s opened: %s %s: %s", alert.alert_id, type_, subject_id, message)
        self._metrics.alerts.labels(type_).inc()
        self._announce(alert)
        return alert

    def act(self, store: Store, alert_id: int, *, action: str, by: str, reason: str,
            now_unix_ns: int) -> Alert:
        """Acknowledge or resolve; resolved alerts are final, acknowledging twice is refused."""
        current = store.alert(alert_id)
        if current is None:
            raise NotFoundError(f"no alert {alert_id}")
        if current.status == "resolved":
            raise ConflictError(f"alert {alert_id} is already resolved")
        if action == "acknowledge" and current.status == "acknowledged":
            raise ConflictError(f"alert {alert_id} is already acknowledged")
        with store.transaction():
            muted, urls = self._mute_and_urls(store, current.type, current.subject_kind,
                                              current.subject_id, now_unix_ns)
            alert = store.update_alert(alert_id, action=action, by=by, reason=reason,
                                       now_unix_ns=now_unix_ns, outbox=urls)
            event = "alert.acknowledged" if action == "acknowledge" else "alert.resolved"
            alert = self._notify(store, alert, event, muted, now_unix_ns)
            self._log_evidence(store, alert)
        logger.info("alert %s %s by %s", alert_id, alert.status, by)
        self._announce(alert)
        return alert

    def auto_resolve(self, store: Store, type_: AlertType, *, subject_kind: str, subject_id: str,
                     reason: str, now_unix_ns: int) -> None:
        """Resolve an unresolved alert once the condition has cleared (e.g. a dark chip answers)."""
        current = store.unresolved_alert(subject_kind, subject_id, type_)
        if current is not None:
            self.act(store, current.alert_id, action="resolve", by="verifier", reason=reason,
                     now_unix_ns=now_unix_ns)

    def _mute_and_urls(self, store: Store, type_: str, subject_kind: str, subject_id: str,
                       now_unix_ns: int) -> tuple[int | None, tuple[str, ...]]:
        """The mute rule silencing this alert now (or None), and the TOML webhooks to tell."""
        membership = store.membership(subject_id) if subject_kind == "chip" else None
        rule = routing.mute_for(store.mutes(now_unix_ns), alert_type=type_,
                                subject_kind=subject_kind, subject_id=subject_id,
                                membership=membership, now_unix_ns=now_unix_ns)
        if rule is not None:
            return rule.rule_id, ()
        # A failing webhook's own failure alert goes out through the other destinations.
        return None, tuple(u for u in self._urls if subject_kind != "channel"
                           or routing.config_webhook_label(u) != subject_id)

    def _notify(self, store: Store, alert: Alert, event: str, muted_by_rule: int | None,
                now_unix_ns: int) -> Alert:
        """Queue the event for every routed channel, or record the mute that silenced it."""
        if muted_by_rule != alert.muted_by_rule:
            alert = store.mark_alert_muted(alert.alert_id, muted_by_rule)
        if muted_by_rule is None:
            membership = (store.membership(alert.subject_id) if alert.subject_kind == "chip"
                          else None)
            channel_ids = routing.channels_for(
                store.routing_rules(), store.channels(), alert_type=alert.type,
                severity=alert.severity, membership=membership,
                exclude=alert.subject_id if alert.subject_kind == "channel" else None)
            store.enqueue_notifications(channel_ids, event, alert, now_unix_ns)
        return alert

    def _log_evidence(self, store: Store, alert: Alert) -> None:
        chip_id = alert.subject_id if alert.subject_kind == "chip" else None
        self._evidence.alert(store, alert.to_json(), chip_id=chip_id,
                             time_unix_ns=alert.updated_unix_ns)

    def _announce(self, alert: Alert) -> None:
        if self._held:
            self._held[-1].append(alert)
            return
        self._hub.publish(alert.to_json())
