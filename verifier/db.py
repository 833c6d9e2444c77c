"""Runs `Store` calls on one dedicated thread so the event loop never blocks on SQLite."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Concatenate, ParamSpec, TypeVar

from verifier.store import Store

_INTERFACE = Store.__module__
P = ParamSpec("P")
T = TypeVar("T")


class Db:
    """A single worker thread owns the connection: SQLite has one writer anyway, and one thread
    makes every domain function a plain transaction with no locking."""

    def __init__(self, store: Store, *, owns_store: bool = True) -> None:
        """`owns_store=False`: another `Db` closes the store (a second thread on one PostgreSQL
        store, which gives each thread its own pooled connection)."""
        self.store = store
        self._owns_store = owns_store
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="verifier-db")

    async def run(self, fn: Callable[Concatenate[Store, P], T], *args: P.args,
                  **kwargs: P.kwargs) -> T:
        """Call `fn(store, ...)` on the database thread. `Store.method` (the interface's own,
        typed reference) is dispatched to the implementation's method of the same name."""
        if getattr(fn, "__module__", None) == _INTERFACE:  # Store or a protocol it is made of
            bound = getattr(self.store, fn.__name__)
            call = partial(bound, *args, **kwargs)
        else:
            call = partial(fn, self.store, *args, **kwargs)
        loop = asyncio.get_running_loop()
        result: T = await loop.run_in_executor(self._pool, call)
        return result

    def close(self) -> None:
        if self._owns_store:
            self._pool.submit(self.store.close).result()
        self._pool.shutdown(wait=True)
