"""Prometheus metrics, one registry per app so tests can run several apps in one process."""

from __future__ import annotations

from collections import Counter as _Tally

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter("lightfence_measurements_accepted_total",
                                "Measurements accepted and stored", registry=self.registry)
        self.rejected = Counter("lightfence_measurements_rejected_total",
                                "Measurements rejected, by reason", ["reason"],
                                registry=self.registry)
        self.batches = Counter("lightfence_batches_total", "Measurement batches, by outcome",
                               ["outcome"], registry=self.registry)
        self.alerts = Counter("lightfence_alerts_opened_total", "Alerts opened, by type",
                              ["type"], registry=self.registry)
        self.verdicts = Counter("lightfence_verdicts_total", "Verdicts, by value", ["verdict"],
                                registry=self.registry)
        self.ingest_seconds = Histogram(
            "lightfence_ingest_seconds", "Time to verify and store one batch",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5), registry=self.registry)
        self.webhook_failures = Counter("lightfence_webhook_failures_total",
                                        "Failed webhook delivery attempts", registry=self.registry)
        self.notifications = Counter(
            "lightfence_notification_attempts_total",
            "Notification delivery attempts (channels and TOML webhooks), by kind and outcome",
            ["kind", "outcome"], registry=self.registry)
        self.sse_clients = Gauge("lightfence_sse_clients", "Connected SSE clients",
                                 registry=self.registry)
        self.evidence_pending = Gauge(
            "lightfence_evidence_pending", "Evidence entries waiting for the log to accept them",
            registry=self.registry)
        # Plain tallies mirror the counters for the JSON /v1/stats endpoint.
        self.accepted_total = 0
        self.batches_total = 0
        self.rejected_by_reason: _Tally[str] = _Tally()

    def count_batch(self, outcome: str, accepted: int, reasons: list[str]) -> None:
        self.batches.labels(outcome).inc()
        self.batches_total += 1
        self.accepted.inc(accepted)
        self.accepted_total += accepted
        for reason in reasons:
            self.rejected.labels(reason).inc()
            self.rejected_by_reason[reason] += 1
