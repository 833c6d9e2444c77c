"""The running verifier: wires store, registries, ingestion, scheduler, verdicts, alerts and
webhooks together, and runs the background loop. Routes call into this object only."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any, Concatenate, ParamSpec, TypeVar

from cryptography import x509

from protocol.gpu_attestation import GpuAttestationError, load_pinned_root
from verifier import attestation, scheduler, verdicts
from verifier.alerts import Alerts
from verifier.config import VerifierConfig
from verifier.db import Db
from verifier.decide_pool import DecidePool
from verifier.errors import ConfigError
from verifier.evidence_sink import open_evidence
from verifier.hub import Hub
from verifier.ingest import Ingestor
from verifier.lease import Leadership, LeaseLostError
from verifier.metrics import Metrics
from verifier.model import TaskRow
from verifier.notifier import Notifier
from verifier.registry import KeyCache
from verifier.retention import Pruner
from verifier.store import Store, open_store
from verifier.tree_heads import TreeHeadSigner, load_or_create_log_key
from verifier.webhooks import WebhookSender

logger = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")
_NS = 1_000_000_000
NOTIFY_POLL_S = 0.5  # how often the leader sends due channel notifications
ATTESTATION_CHECK_S = 60.0  # how often enrolled GPUs are checked for overdue re-attestation
# How often lost tasks are looked for (a fraction of the task TTL they settle for first): each
# check probes every landmark for an answer, which a tick's new tasks would not change.
FAULT_CHECKS_PER_TASK_TTL = 2
# Due rounds collected per trip to the database thread: collecting checks every stored record's
# signatures (~2 ms a round), and a landmark's task poll queues behind the whole trip (250
# rounds in one trip held polls for 0.5 s at 100,000 chips; benchmarks/fleet.py).
COLLECT_CHUNK = 4


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
        # A task poll on PostgreSQL gets its own database thread (so its own pooled connection;
        # row locks, no single writer): it never queues behind the leader's tick. SQLite has one
        # connection and one writer, so a poll there waits its turn on the one thread.
        self._poll_db = Db(self.db.store, owns_store=False) if config.database_url else self.db
        self.keys = KeyCache()
        ca_key = config.ca_public_key if config.ca_public_key_b64 else b""
        self.evidence = open_evidence(config, ca_key)
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
        # The lease has its own connection and thread, so a long request on the main one (a
        # bulk enrolment, a retention pass) never delays a renewal past the lease's TTL.
        self._lease_db = Db(open_store(config))
        self.leadership = Leadership(self._lease_db)
        self._answers = scheduler.AnswerCursor()
        self._answers_token: int | None = None  # the lease token `_answers` was built under
        self._decider = DecidePool(config.decide_processes)
        self._task_waiters: dict[str, asyncio.Event] = {}
        self._background: list[asyncio.Task[None]] = []
        self._refreshes: set[asyncio.Task[None]] = set()
        self._last_mesh_refresh_ns = 0
        self.gpu_root = _gpu_root(config)
        self._last_attestation_check_ns = 0
        self._last_fault_check_ns = 0

    @property
    def settings(self) -> scheduler.SchedulerSettings:
        c = self.config
        return scheduler.SchedulerSettings(c.landmark_dead_after_s, c.mesh_interval_s,
                                           c.task_ttl_s)

    async def start(self) -> None:
        self.hub.bind(asyncio.get_running_loop())
        self.hub.on_signal("_tasks", lambda _: self._wake_task_waiters())
        self.hub.on_signal("_key", self._refresh_key)
        await self.db.run(self.keys.load)
        self._decider.start()
        await self.leadership.renew()
        self._background = [asyncio.create_task(self._loop(), name="verifier-tick"),
                            asyncio.create_task(self.leadership.run(), name="verifier-lease"),
                            asyncio.create_task(self.hub.relay(self.db, self.leadership.holder),
                                                name="verifier-relay"),
                            asyncio.create_task(self.webhooks.run(), name="verifier-webhooks"),
                            # Channel notifications (Slack, e-mail, ...) go out from the
                            # leader only, so no two replicas send one (webhooks are claimed).
                            asyncio.create_task(self._while_leader(
                                NOTIFY_POLL_S,
                                lambda: self.notifier.deliver_due(time.time_ns()),
                                "notification delivery pass"), name="verifier-notifier"),
                            asyncio.create_task(self._while_leader(
                                self.config.retention_interval_s,
                                lambda: self.pruner.prune_all(time.time_ns()), "retention pass"),
                                name="verifier-retention")]
        heads = self.tree_heads
        if heads is not None:
            self._background.append(asyncio.create_task(self._while_leader(
                self.config.tree_head_interval_s,
                lambda: asyncio.to_thread(heads.sign_if_grown, int(time.time())),
                "signing the evidence log's tree head"), name="verifier-tree-heads"))

    async def stop(self) -> None:
        for task in self._background:
            task.cancel()
        for task in self._background:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self.tree_heads is not None:  # last head: an export after a clean stop covers all
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self.tree_heads.sign_if_grown, int(time.time()))
        with contextlib.suppress(Exception):  # a standby then takes over at once
            await self.leadership.release()
        self._lease_db.close()
        await self.webhooks.close()
        await self.notifier.close()
        self.ingestor.close()
        self._decider.close()
        if self._poll_db is not self.db:
            self._poll_db.close()
        self.db.close()
        self.evidence.close()

    def task_event(self, landmark_id: str) -> asyncio.Event:
        return self._task_waiters.setdefault(landmark_id, asyncio.Event())

    def known_task_event(self, landmark_id: str) -> asyncio.Event | None:
        """The landmark's wake-up event if an authorised poll created it (None: not yet)."""
        return self._task_waiters.get(landmark_id)

    async def poll_tasks(self, landmark_id: str, now_unix_ns: int,
                         authorize: Callable[[Store], object] | None = None) -> list[TaskRow]:
        """A landmark's poll: it is alive now, and takes its undelivered tasks. One trip to the
        database thread, so a poll queues behind a tick's work once, not twice: `authorize`
        (the bearer token's check, which raises) runs first in the same trip."""
        def poll(store: Store) -> list[TaskRow]:
            if authorize is not None:
                authorize(store)
            store.touch_landmark(landmark_id, now_unix_ns)
            return store.take_tasks(landmark_id, now_unix_ns)

        return await self._poll_db.run(poll)

    def _wake_task_waiters(self) -> None:
        for event in self._task_waiters.values():
            event.set()

    def _refresh_key(self, payload: dict[str, Any]) -> None:
        """Other replicas registered chips or landmarks: load their keys here too."""
        kind, ids = str(payload["kind"]), [str(i) for i in payload["ids"]]

        def refresh(store: Store) -> None:
            for subject_id in ids:
                self.keys.refresh(store, kind, subject_id)

        task = asyncio.get_running_loop().create_task(self.db.run(refresh))
        self._refreshes.add(task)
        task.add_done_callback(self._refreshes.discard)

    def announce_keys(self, kind: str, subject_ids: list[str]) -> None:
        """Tell the other replicas that these chips or landmarks were (re-)registered here."""
        self.hub.publish({"kind": kind, "ids": subject_ids}, event="_key")

    async def _while_leader(self, interval_s: float, step: Callable[[], Awaitable[Any]],
                            what: str) -> None:
        """Run `step` every `interval_s` while this replica leads (retention, tree heads)."""
        while True:
            if self.leadership.is_leader:
                try:
                    await step()
                except Exception:
                    logger.exception("%s failed", what)
            await asyncio.sleep(interval_s)

    async def _fenced(self, fn: Callable[Concatenate[Store, P], T], *args: P.args,
                      **kwargs: P.kwargs) -> T:
        """`fn(store, ...)` as one leader-only transaction (verifier.lease): it writes nothing
        unless this replica still holds the lease; the evidence entries it makes are part of
        it (verifier.evidence_sink), the alerts it raises are announced after the COMMIT."""
        def call(store: Store) -> T:
            with self.alerts.held(), self.evidence.leading(), self.leadership.fenced(store):
                return fn(store, *args, **kwargs)

        return await self.db.run(call)

    async def _loop(self) -> None:
        while True:
            try:
                await self.tick(time.time_ns())
            except Exception:
                logger.exception("verifier tick failed")
            await asyncio.sleep(self.config.tick_s)

    async def tick(self, now_unix_ns: int) -> None:
        """One scheduling pass, on the leader only: plan, wake long-polls, close rounds into
        verdicts. Every write is fenced by the lease (a lost lease ends the pass)."""
        # A renewal that lapsed only locally (the renewing task starved on a loaded machine)
        # is retried here rather than skipping the tick; another live holder still wins.
        if not self.leadership.is_leader and not await self.leadership.renew():
            return
        try:
            await self._lead(now_unix_ns)
        except LeaseLostError as exc:
            logger.warning("tick stopped: %s", exc)

    async def _lead(self, now_unix_ns: int) -> None:
        if self.evidence.enabled:  # alerts' evidence other replicas queued, oldest first
            self.metrics.evidence_pending.set(await self._fenced(self.evidence.drain_queue))
        for _ in range(scheduler.PLAN_BATCH // scheduler.PLAN_CHUNK):
            planned = await self._fenced(scheduler.plan, self.settings, now_unix_ns)
            if planned.round_ids:  # landmarks start on this chunk while the next is planned
                self._wake_task_waiters()
                self.hub.publish({"rounds": len(planned.round_ids)}, event="_tasks")
            if planned.chips_read < scheduler.PLAN_CHUNK:
                break
        if self.leadership.token != self._answers_token:  # (re)gained the lease: start afresh
            self._answers, self._answers_token = scheduler.AnswerCursor(), self.leadership.token
        due = await self.db.run(scheduler.due_rounds, now_unix_ns, self._answers)
        inputs: list[verdicts.RoundInputs] = []
        for start in range(0, len(due), COLLECT_CHUNK):  # a poll waits behind one chunk
            inputs += await self._fenced(verdicts.collect_all, due[start:start + COLLECT_CHUNK],
                                         now_unix_ns, self.alerts, self.config.min_key_protection)
        decisions = await self._decider.decide_all(inputs)
        for decision in decisions:
            try:
                verdict = await self._fenced(verdicts.record, decision, alerts=self.alerts,
                                             metrics=self.metrics, evidence=self.evidence,
                                             now_unix_ns=time.time_ns())
            except LeaseLostError:
                raise
            except verdicts.RoundClosedError as exc:
                logger.warning("%s", exc)
                continue
            except Exception:  # the other rounds' verdicts are still recorded; this round
                logger.exception(  # stays open (its close rolled back) and is decided again
                    "chip %s round %s: recording the verdict failed; retried next tick",
                    decision.inputs.chip.chip_id, decision.inputs.round.round_id)
                continue
            self.hub.publish(verdicts.verdict_event(verdict), event="verdict")
        for chip_id in await self._fenced(verdicts.expire_verified, now_unix_ns):
            self.hub.publish({"chip_id": chip_id, "state": "inconclusive",
                              "reason": "verified_expired", "state_since_unix_ns": now_unix_ns},
                             event="chip_state")
        fault_check_ns = int(self.config.task_ttl_s / FAULT_CHECKS_PER_TASK_TTL * _NS)
        if now_unix_ns - self._last_fault_check_ns >= fault_check_ns:
            self._last_fault_check_ns = now_unix_ns
            await self._fenced(verdicts.landmark_faults, self.alerts,
                               window_s=self.config.landmark_dead_after_s * 5,
                               settle_s=self.config.task_ttl_s, now_unix_ns=now_unix_ns)
        if now_unix_ns - self._last_attestation_check_ns >= ATTESTATION_CHECK_S * _NS:
            self._last_attestation_check_ns = now_unix_ns
            await self._fenced(attestation.raise_overdue, self.alerts,
                              max_age_s=self.config.gpu_attestation_max_age_s,
                              now_unix_ns=now_unix_ns)
        if now_unix_ns - self._last_mesh_refresh_ns >= self.config.calibration_refresh_s * _NS:
            self._last_mesh_refresh_ns = now_unix_ns
            since = now_unix_ns - int(self.config.calibration_refresh_s * 4 * _NS)
            await self._fenced(verdicts.refresh_mesh_models, self.alerts, since_unix_ns=since,
                              now_unix_ns=now_unix_ns)
