"""In-process fan-out of events to SSE subscribers; publish() is safe from any thread."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator
from typing import Any

_QUEUE_LIMIT = 1_000  # a subscriber this far behind is dropped rather than grow memory


class Hub:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._subscribers: set[asyncio.Queue[tuple[int, str] | None]] = set()
        self._sequence = itertools.count(1)

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, payload: dict[str, Any]) -> None:
        if self._loop is None:
            return
        data = json.dumps(payload, separators=(",", ":"))
        self._loop.call_soon_threadsafe(self._deliver, data)

    def _deliver(self, data: str) -> None:
        sequence = next(self._sequence)
        for queue in list(self._subscribers):
            try:
                queue.put_nowait((sequence, data))
            except asyncio.QueueFull:
                # Too far behind: drop its backlog and tell it to end (the client reconnects).
                self._subscribers.discard(queue)
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(None)

    async def subscribe(self, ping_s: float = 15.0) -> AsyncIterator[str]:
        """Yield ready-to-send SSE frames until the client goes away."""
        queue: asyncio.Queue[tuple[int, str] | None] = asyncio.Queue(_QUEUE_LIMIT)
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
                sequence, data = item
                yield f"id: {sequence}\ndata: {data}\n\n"
        finally:
            self._subscribers.discard(queue)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)
