"""The running verifier: wires store, registries, ingestion, scheduler, verdicts, alerts and
webhooks together, and runs the background loop. Routes call into this object only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from concurrent.futures import ThreadPoolExecutor

from cryptography import x509

from protocol.gpu_attestation import GpuAttestationError, load_pinned_root
from verifier import attestation, scheduler, verdicts
from verifier.alerts import Alerts
from verifier.config import VerifierConfig
from verifier.db import Db
from verifier.errors import ConfigError
from verifier.evidence_sink import EvidenceSink
from verifier.hub import Hub
from verifier.ingest import Ingestor
from verifier.metrics import Metrics
from verifier.notifier import Notifier
from verifier.registry import KeyCache
from verifier.retention import Pruner
from verifier.store import open_store
from verifier.tree_heads import TreeHeadSigner, load_or_create_log_key
from verifier.webhooks import WebhookSender

logger = logging.getLogger(__name__)
_NS = 1_000_000_000
ATTESTATION_CHECK_S = 60.0  # how often enrolled GPUs are checked for overdue re-attestation


def _gpu_root(config: VerifierConfig) -> x509.Certificate:
    """The pinned NVIDIA device-identity root; ConfigError when the configured file is unusable."""
    path = config.nvidia_root_cert_file
    try:
        return load_pinned_root(None if path is None else path.read_bytes())
    except (OSError, GpuAttestationError) as exc:
        raise ConfigError(f"nvidia_root_cert_file {path}: {exc}") from exc


class Service:
    def __init__(self, config: VerifierConfig) -> None:
        self.config = config
        self.metrics = Metrics()
        self.hub = Hub()
        self.db = Db(open_store(config))
        self.keys = KeyCache()
        ca_key = config.ca_public_key if config.ca_public_key_b64 else b""
        self.evidence = EvidenceSink(config.db_path if config.evidence else None, ca_key)
        self.tree_heads = (None if self.evidence.log is None else TreeHeadSigner(
            self.evidence.log, load_or_create_log_key(config.log_key_path),
            config.tree_head_interval_s))
        self.alerts = Alerts(webhook_urls=tuple(h.url for h in config.webhooks), hub=self.hub,
                             metrics=self.metrics, evidence=self.evidence)
        self.ingestor = Ingestor(db=self.db, config=config, keys=self.keys,
                                 metrics=self.metrics, alerts=self.alerts)
        self.webhooks = WebhookSender(db=self.db, config=config, metrics=self.metrics,
                                      alerts=self.alerts)
        self.notifier = Notifier(db=self.db, config=config, alerts=self.alerts,
                                 metrics=self.metrics)
        self.pruner = Pruner(db=self.db, config=config)
        self._geo_pool = ThreadPoolExecutor(1, thread_name_prefix="geo")
        self._task_waiters: dict[str, asyncio.Event] = {}
        self._background: list[asyncio.Task[None]] = []
        self._last_mesh_refresh_ns = 0
        self.gpu_root = _gpu_root(config)
        self._last_attestation_check_ns = 0

    @property
    def settings(self) -> scheduler.SchedulerSettings:
        c = self.config
        return scheduler.SchedulerSettings(c.landmark_dead_after_s, c.mesh_interval_s,
                                           c.task_ttl_s)

    async def start(self) -> None:
        self.hub.bind(asyncio.get_running_loop())
        await self.db.run(self.keys.load)
        self._background = [asyncio.create_task(self._loop(), name="verifier-tick"),
                            asyncio.create_task(self.webhooks.run(), name="verifier-webhooks"),
                            asyncio.create_task(self.notifier.run(), name="verifier-notifier"),
                            asyncio.create_task(self.pruner.run(), name="verifier-retention")]
        if self.tree_heads is not None:
            self._background.append(asyncio.create_task(self.tree_heads.run(),
                                                        name="verifier-tree-heads"))

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self.webhooks.close()
        await self.notifier.close()
        self.ingestor.close()
        self._geo_pool.shutdown(wait=True)
        self.db.close()
        if self.tree_heads is not None:  # last head: an export after a clean stop covers all
            self.tree_heads.sign_if_grown(int(time.time()))
        self.evidence.close()

    def task_event(self, landmark_id: str) -> asyncio.Event:
        return self._task_waiters.setdefault(landmark_id, asyncio.Event())

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick(time.time_ns())
            except Exception:
                logger.exception("verifier tick failed")
            await asyncio.sleep(self.config.tick_s)

    async def tick(self, now_unix_ns: int) -> None:
        """One scheduling pass: plan, wake long-polls, close rounds into verdicts."""
        if self.evidence.enabled:  # evidence a failing log could not take yet, oldest first
            pending = await self.db.run(lambda _: self.evidence.flush_pending())
            self.metrics.evidence_pending.set(pending)
        created = await self.db.run(scheduler.plan, self.settings, now_unix_ns)
        if created:
            for event in self._task_waiters.values():
                event.set()
        due = await self.db.run(scheduler.due_rounds, now_unix_ns)
        inputs = await self.db.run(verdicts.collect_all, due, now_unix_ns, self.alerts,
                                   self.config.min_key_protection)
        loop = asyncio.get_running_loop()
        decisions = (await loop.run_in_executor(self._geo_pool, verdicts.decide_all, inputs)
                     if inputs else [])
        for decision in decisions:
            try:
                verdict = await self.db.run(verdicts.record, decision, alerts=self.alerts,
                                            metrics=self.metrics, evidence=self.evidence,
                                            now_unix_ns=time.time_ns())
            except Exception:  # the other rounds' verdicts are still recorded
                logger.exception("chip %s round %s: recording the verdict failed",
                                 decision.inputs.chip.chip_id, decision.inputs.round.round_id)
                continue
            self.hub.publish(verdicts.verdict_event(verdict), event="verdict")
        for chip_id in await self.db.run(verdicts.expire_verified, now_unix_ns):
            self.hub.publish({"chip_id": chip_id, "state": "inconclusive",
                              "reason": "verified_expired", "state_since_unix_ns": now_unix_ns},
                             event="chip_state")
        await self.db.run(verdicts.landmark_faults, self.alerts,
                          window_s=self.config.landmark_dead_after_s * 5,
                          settle_s=self.config.task_ttl_s, now_unix_ns=now_unix_ns)
        if now_unix_ns - self._last_attestation_check_ns >= ATTESTATION_CHECK_S * _NS:
            self._last_attestation_check_ns = now_unix_ns
            await self.db.run(attestation.raise_overdue, self.alerts,
                              max_age_s=self.config.gpu_attestation_max_age_s,
                              now_unix_ns=now_unix_ns)
        if now_unix_ns - self._last_mesh_refresh_ns >= self.config.calibration_refresh_s * _NS:
            self._last_mesh_refresh_ns = now_unix_ns
            since = now_unix_ns - int(self.config.calibration_refresh_s * 4 * _NS)
            await self.db.run(verdicts.refresh_mesh_models, self.alerts, since_unix_ns=since,
                              now_unix_ns=now_unix_ns)
