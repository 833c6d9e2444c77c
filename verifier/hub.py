"""In-process fan-out of events to SSE subscribers; publish() is safe from any thread."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncGenerator
from typing import Any

_QUEUE_LIMIT = 1_000  # a subscriber this far behind is dropped rather than grow memory


class Hub:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[asyncio.Queue[tuple[int, str | None, str] | None]] = set()
        self._sequence = itertools.count(1)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, payload: dict[str, Any], event: str | None = None) -> None:
        """Send to every subscriber. Alerts go unnamed (`onmessage` gets them); other kinds are
        named SSE events (e.g. `verdict`), which `onmessage`-only clients never see."""
        if self._loop is None:
            return
        data = json.dumps(payload, separators=(",", ":"))
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
