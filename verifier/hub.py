"""Fan-out of events to SSE subscribers, across every replica; publish() is safe from any thread.

A replica delivers what it publishes to its own subscribers at once, and writes it to the
shared database's `hub_events` table; `relay()` on every replica writes its queue and reads the
other replicas' events after its cursor, so an alert raised by the leader (or acknowledged
through any replica) reaches SSE clients connected anywhere within about `RELAY_POLL_S`.
Polling a cursor works on SQLite files shared by processes and on PostgreSQL alike.

Events named with a leading underscore are signals between replicas, never sent to SSE clients:
`_tasks` (the leader planned tasks: wake the landmarks' long-polls here too) and `_key` (a chip
or landmark was registered: refresh this replica's key cache).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from collections.abc import Set as AbstractSet
from typing import Any

from verifier.db import Db
from verifier.store import Store

logger = logging.getLogger(__name__)

_QUEUE_LIMIT = 1_000  # a subscriber this far behind is dropped rather than grow memory
RELAY_POLL_S = 0.25  # how often a replica exchanges events through the database
_KEEP_EVENTS_S = 600.0  # relayed events are pruned after this long (SSE has no replay)
_READ_BATCH = 1_000
# Ids below the cursor re-read each poll: on PostgreSQL an id can commit after a larger one.
_LOOKBACK_IDS = 1_000
_NS = 1_000_000_000


def unseen_events(store: Store, after_id: int,
                  seen: AbstractSet[int]) -> list[tuple[int, str, str | None, str]]:
    """(event_id, origin, event, data) of the events after `after_id` not in `seen`, by id.
    The look-back window's ids are read each poll, their payloads only once: a window of bulk
    enrolments' key signals (1,000 chip ids each) cost 2.5 ms of the database thread per poll
    when whole rows were re-read. At most _LOOKBACK_IDS ids lie in the window, so the limit
    always leaves room for _READ_BATCH new events: the cursor cannot stall. (`seen` belongs to
    the relay, which waits for this call: nothing changes it meanwhile.)"""
    ids = [i for i in store.hub_event_ids_after(after_id, _LOOKBACK_IDS + _READ_BATCH)
           if i not in seen]
    return store.hub_events_by_id(ids) if ids else []


class Hub:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[asyncio.Queue[tuple[int, str | None, str] | None]] = set()
        self._sequence = itertools.count(1)
        self._outgoing: list[tuple[str | None, str]] = []  # for the other replicas
        self._outgoing_lock = threading.Lock()
        self._signals: dict[str, Callable[[dict[str, Any]], None]] = {}
        self._relaying = False

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def on_signal(self, name: str, handler: Callable[[dict[str, Any]], None]) -> None:
        """Call `handler(payload)` (on the event loop) for signal `name` from another replica."""
        self._signals[name] = handler

    def publish(self, payload: dict[str, Any], event: str | None = None) -> None:
        """Send to every subscriber of every replica. Alerts go unnamed (`onmessage` gets them);
        other kinds are named SSE events (e.g. `verdict`), which `onmessage`-only clients never
        see; `_`-named signals go to the other replicas only."""
        if self._loop is None:
            return
        data = json.dumps(payload, separators=(",", ":"))
        if self._relaying:
            with self._outgoing_lock:
                self._outgoing.append((event, data))
        if event is None or not event.startswith("_"):
            self._loop.call_soon_threadsafe(self._deliver, event, data)

    def _deliver(self, event: str | None, data: str) -> None:
        sequence = next(self._sequence)
        for queue in list(self._subscribers):
            try:
                queue.put_nowait((sequence, event, data))
            except asyncio.QueueFull:
                # Too far behind: drop its backlog and tell it to end (the client reconnects).
                self._subscribers.discard(queue)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)

    async def relay(self, db: Db, origin: str, poll_s: float = RELAY_POLL_S) -> None:
        """Exchange events with the other replicas through the database, until cancelled."""
        self._relaying = True
        cursor = await db.run(Store.last_hub_event_id)
        seen: deque[int] = deque(maxlen=4 * _LOOKBACK_IDS)
        seen_set: set[int] = set()
        last_prune = time.monotonic()
        while True:
            try:
                with self._outgoing_lock:
                    batch, self._outgoing = self._outgoing, []
                if batch:
                    await db.run(Store.add_hub_events, origin, batch, time.time_ns())
                rows = await db.run(unseen_events, max(0, cursor - _LOOKBACK_IDS), seen_set)
                for event_id, event_origin, event, data in rows:
                    cursor = max(cursor, event_id)
                    if len(seen) == seen.maxlen:
                        seen_set.discard(seen[0])
                    seen.append(event_id)
                    seen_set.add(event_id)
                    if event_origin != origin:
                        self._remote(event, data)
                if time.monotonic() - last_prune >= _KEEP_EVENTS_S / 10:
                    last_prune = time.monotonic()
                    await db.run(Store.prune_hub_events,
                                 time.time_ns() - int(_KEEP_EVENTS_S * _NS))
            except Exception:
                logger.exception("relaying events between replicas failed")
            await asyncio.sleep(poll_s)

    def _remote(self, event: str | None, data: str) -> None:
        if event is not None and event.startswith("_"):
            handler = self._signals.get(event)
            if handler is not None:
                try:
                    handler(json.loads(data))
                except Exception:
                    logger.exception("replica signal %s failed", event)
            return
        self._deliver(event, data)

    async def subscribe(self, ping_s: float = 15.0) -> AsyncGenerator[str, None]:
        """Yield ready-to-send SSE frames until the client goes away."""
        queue: asyncio.Queue[tuple[int, str | None, str] | None] = asyncio.Queue(_QUEUE_LIMIT)
        self._subscribers.add(queue)
        try:
            yield ": connected\n\n"
            while True:
                try:
                    item = await asyncio.wait_for(queue.get(), ping_s)
                except TimeoutError:
                    yield ": ping\n\n"
                    continue
                if item is None:
                    return
                sequence, event, data = item
                name = f"event: {event}\n" if event is not None else ""
                yield f"id: {sequence}\n{name}data: {data}\n\n"
        finally:
            self._subscribers.discard(queue)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
