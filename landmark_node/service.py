"""The landmark process: asyncio for scheduling, spooling and delivery around the `Prober` thread
(the timed path) and a `ResponderServer` thread (answers peers' mesh probes)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import time

import httpx

from keystore.cert_files import read_ca_public_key, trusted_chip_keys, trusted_landmark_keys
from keystore.key_files import load_signer
from keystore.token_files import read_token_file
from landmark_node.config import LandmarkConfig
from landmark_node.errors import BatchRefusedError
from landmark_node.prober import Prober
from landmark_node.sinks import BatchSink, FileSink
from landmark_node.spool import Spool
from landmark_node.tasks import FileTaskSource, StaticTaskSource, Task, TaskSource
from landmark_node.uplink import (
    VerifierBatchSink,
    VerifierTaskSource,
    verifier_client,
)
from protocol.challenger import ChallengerConfig, ChallengerCore, Target
from protocol.keys import SoftwareSigner
from protocol.records import MeasurementRecord
from protocol.responder import ResponderCore
from udp_io.responder_server import ResponderServer

logger = logging.getLogger(__name__)
DELIVERY_RETRY_S = 2.0


class LandmarkService:
    def __init__(
        self,
        config: LandmarkConfig,
        *,
        task_source: TaskSource | None = None,
        sink: BatchSink | None = None,
        signer: SoftwareSigner | None = None,
    ) -> None:
        self.config = config
        self.signer = signer or load_signer(config.key_file)
        ca_key = read_ca_public_key(config.ca_public_key)
        now_s = int(time.time())
        self.chip_keys = trusted_chip_keys(config.chip_certs_dir, ca_key, now_s)
        self.landmark_keys = trusted_landmark_keys(config.landmark_certs_dir, ca_key, now_s)
        # With a [verifier] table the verifier hands out tasks and receives batches over HTTP;
        # without one, targets come from the config or a task file and batches go to files.
        self._client: httpx.AsyncClient | None = None
        if config.verifier is not None and (task_source is None or sink is None):
            self._client = verifier_client(
                config.verifier.url, read_token_file(config.verifier.token_file)
            )
        self.task_source: TaskSource
        if task_source is not None:
            self.task_source = task_source
        elif self._client is not None and config.verifier is not None:
            self.task_source = VerifierTaskSource(
                self._client, config.landmark_id, wait_s=config.verifier.poll_wait_s
            )
        elif config.tasks_file is not None:
            self.task_source = FileTaskSource(config.tasks_file, config.round_interval_s)
        else:
            self.task_source = StaticTaskSource(list(config.targets), config.round_interval_s)
        self.sink: BatchSink
        if sink is not None:
            self.sink = sink
        elif self._client is not None:
            self.sink = VerifierBatchSink(self._client)
        else:
            self.sink = FileSink(config.outbox_dir)
        self.spool = Spool(config.spool_path)
        self._records: queue.SimpleQueue[MeasurementRecord] = queue.SimpleQueue()
        core = ChallengerCore(
            config.landmark_id,
            self.signer,
            ChallengerConfig(
                timeout_ns=int(config.timeout_s * 1e9),
                max_attempts=config.max_attempts,
                lifetime_ns=int(config.challenge_lifetime_s * 1e9),
            ),
        )
        self.prober = Prober(
            core, config.host, config.challenge_port, self._records.put,
            max_rate_per_s=config.max_rate_per_s,
        )
        self.responder: ResponderServer | None = None
        if config.responder_port is not None:
            self.responder = ResponderServer(
                ResponderCore({config.landmark_id: self.signer}, self.landmark_keys),
                config.host, config.responder_port,
            )
        self.skipped_tasks = 0
        self._warned: set[str] = set()
        self._sealed = asyncio.Event()  # the spool sealed a batch: deliver it now
        self._delivery_failed = False  # the last delivery pass stopped on a sink failure

    def _target(self, task: Task) -> Target | None:
        keys = self.chip_keys if task.target_kind == "chip" else self.landmark_keys
        public_key = keys.get(task.target_id)
        host, port = task.host, task.port
        if not host:
            host, port = self.prober.core.hello_endpoints.get(task.target_id, ("", 0))
        if public_key is None or not host:
            self.skipped_tasks += 1
            if task.target_id not in self._warned:
                self._warned.add(task.target_id)
                reason = "no valid certificate" if public_key is None else "no address/HELLO"
                logger.warning("landmark %s skips %s %s: %s", self.config.landmark_id,
                               task.target_kind, task.target_id, reason)
            return None
        return Target(task.target_kind, task.target_id, self.config.local_host(host), port,
                      public_key, task.round_id, task.task_id)

    async def _schedule(self) -> None:
        while True:
            try:
                tasks = await self.task_source.next_tasks()
            except Exception as exc:  # e.g. verifier unreachable: keep measuring later rounds
                logger.warning("landmark %s: no tasks this time (%s)", self.config.landmark_id, exc)
                await asyncio.sleep(DELIVERY_RETRY_S)
                continue
            targets = [t for t in map(self._target, tasks) if t is not None]
            self.prober.submit(targets)
            loop = asyncio.get_running_loop()
            for probe in range(1, self.config.probes_per_task):
                loop.call_later(probe * self.config.probe_spacing_s, self.prober.submit, targets)

    def _drain_records(self) -> int:
        records: list[MeasurementRecord] = []
        while True:
            try:
                records.append(self._records.get_nowait())
            except queue.Empty:
                break
        return self.spool.add_records(records)

    async def _spool(self) -> None:
        while True:
            await asyncio.sleep(self.config.batch_interval_s)
            await asyncio.to_thread(self._drain_records)
            sealed = await asyncio.to_thread(
                self.spool.seal_batches, self.signer, self.config.landmark_id,
                self.config.batch_max_records,
            )
            if sealed:
                self._sealed.set()

    async def deliver_pending(self) -> int:
        """Hand every sealed, unacknowledged batch to the sink, in order. A batch refused for good
        is quarantined and the pass goes on; any other failure stops it (retried later)."""
        delivered = 0
        self._delivery_failed = False
        for batch in await asyncio.to_thread(self.spool.undelivered):
            try:
                await self.sink.deliver(batch)
            except BatchRefusedError as exc:
                logger.error("landmark %s: batch %s (%d records) quarantined: %s",
                             self.config.landmark_id, batch.batch_id, len(batch.records), exc)
                await asyncio.to_thread(self.spool.quarantine, batch.batch_id, str(exc))
                continue
            except Exception as exc:  # any other sink failure means: keep it and retry later
                logger.warning("landmark %s: batch %s not delivered (%s); will retry",
                               self.config.landmark_id, batch.batch_id, exc)
                self._delivery_failed = True
                return delivered
            await asyncio.to_thread(self.spool.mark_delivered, batch.batch_id)
            delivered += 1
        return delivered

    async def _deliver(self) -> None:
        # Each sealed batch goes out at once: a record waits for the spool's interval only, not
        # for a second, unrelated delivery interval too (the verifier closes rounds on answers).
        while True:
            self._sealed.clear()
            await self.deliver_pending()
            if self._delivery_failed:
                await asyncio.sleep(DELIVERY_RETRY_S)
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sealed.wait(), self.config.batch_interval_s)

    def counters(self) -> dict[str, int]:
        snapshot = {f"prober_{k}": v for k, v in self.prober.counters().items()}
        if self.responder is not None:
            snapshot.update({f"responder_{k}": v for k, v in self.responder.counters().items()})
        snapshot.update(self.spool.stats())
        snapshot["skipped_tasks"] = self.skipped_tasks
        return snapshot

    async def run(self, stop: asyncio.Event) -> None:
        """Serve until `stop` is set, then flush: every measured record ends up in the spool."""
        self.prober.start()
        if self.responder is not None:
            self.responder.start()
        logger.info("landmark %s challenging from %s:%d (kernel timestamps: %s); tasks from %s",
                    self.config.landmark_id, *self.prober.address, self.prober.kernel_timestamps,
                    self.config.verifier.url if self.config.verifier else "config")
        loops = [asyncio.create_task(c) for c in (self._schedule(), self._spool(), self._deliver())]
        try:
            await stop.wait()
        finally:
            for loop in loops:
                loop.cancel()
            await asyncio.gather(*loops, return_exceptions=True)
            self.prober.stop()
            if self.responder is not None:
                self.responder.stop()
            self._drain_records()
            self.spool.seal_batches(
                self.signer, self.config.landmark_id, self.config.batch_max_records
            )
            await self.deliver_pending()
            if self._client is not None:
                await self._client.aclose()
            logger.info("landmark %s stopped: %s", self.config.landmark_id, self.counters())
            self.spool.close()
