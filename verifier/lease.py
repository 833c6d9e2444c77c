"""Leadership among verifier replicas: one lease row in the shared database, with a fencing token.

Every replica serves the API, the dashboard and ingestion; only the holder of the `leader`
lease schedules rounds, decides verdicts and appends to the evidence log. A replica takes the
lease when it is free or expired, and its holder renews it every `RENEW_EVERY_S`. Each take
increments the row's token. Every leader-only write runs in one transaction that first checks
the row still carries this replica's token (`Leadership.fenced`): on SQLite the check follows
`BEGIN IMMEDIATE`, which holds the database's write lock until COMMIT; on PostgreSQL it reads
the row `FOR SHARE`, so a taker's `UPDATE` waits for the transaction. Either way no other
replica can take the lease between the check and the commit, and a leader that paused (GC,
SIGSTOP, a slow disk) past its lease finds a newer token and writes nothing.

Takeover bound after a leader dies without releasing: the lease runs out at most
`LEASE_TTL_S` after its last renewal, a standby tries every `RENEW_EVERY_S` and then ticks
within `tick_s`: at most LEASE_TTL_S + RENEW_EVERY_S + tick_s (7 s with the defaults). A clean
stop releases the lease, so the next replica takes over within RENEW_EVERY_S.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

from verifier.db import Db
from verifier.errors import VerifierError
from verifier.store import Store

logger = logging.getLogger(__name__)

LEADER_LEASE = "leader"
LEASE_TTL_S = 5.0  # a holder that has not renewed for this long can be replaced
RENEW_EVERY_S = 1.0  # holders renew and standbys try this often
_NS = 1_000_000_000


class LeaseLostError(VerifierError):
    """A leader-only write found the lease held under a newer token: nothing was written."""

    status_code = 503


def new_holder_id() -> str:
    """This process's name in the lease row: host, pid and a random part (a restarted process
    with a recycled pid is still a new holder)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(4)}"


class Leadership:
    """This replica's view of the `leader` lease; renewed by `run()` on the event loop through
    `db`, which should be a connection of its own (renewals must not queue behind long work)."""

    def __init__(self, db: Db, holder: str | None = None, *, ttl_s: float = LEASE_TTL_S,
                 renew_every_s: float = RENEW_EVERY_S) -> None:
        self._db = db
        self.holder = holder or new_holder_id()
        self._ttl_s = ttl_s
        self._renew_every_s = renew_every_s
        self._token: int | None = None
        self._renewed_monotonic = 0.0

    @property
    def token(self) -> int | None:
        """The fencing token while this replica believes it leads, else None. A lease not
        renewed for its TTL (database unreachable) is given up locally too."""
        if self._token is not None and time.monotonic() - self._renewed_monotonic >= self._ttl_s:
            return None
        return self._token

    @property
    def is_leader(self) -> bool:
        return self.token is not None

    async def renew(self) -> bool:
        """Take or renew the lease; whether this replica leads now."""
        started = time.monotonic()
        token = await self._db.run(Store.acquire_lease, LEADER_LEASE, self.holder,
                                   time.time_ns(), int(self._ttl_s * _NS))
        if token is not None and token != self._token:
            logger.warning("replica %s is now the leader (fencing token %d)", self.holder, token)
        elif token is None and self._token is not None:
            logger.warning("replica %s lost the leader lease", self.holder)
        self._token = token
        if token is not None:
            self._renewed_monotonic = started
        return token is not None

    async def run(self) -> None:
        while True:
            try:
                await self.renew()
            except Exception:
                logger.exception("renewing the leader lease failed")
            await asyncio.sleep(self._renew_every_s)

    async def release(self) -> None:
        """Give the lease up (clean stop), so a standby takes over at its next try."""
        if self._token is not None:
            self._token = None
            await self._db.run(Store.release_lease, LEADER_LEASE, self.holder)

    @contextmanager
    def fenced(self, store: Store) -> Iterator[None]:
        """One transaction that writes only while this replica's token is the current one
        (call on the database thread). LeaseLostError, and nothing written, otherwise. The
        database decides, not the local clock: a lease whose renewal is merely late here (a
        starved renewal task) still writes while no other replica has taken it."""
        token = self._token
        if token is None:
            raise LeaseLostError(f"replica {self.holder} does not hold the leader lease")
        with store.transaction():
            if not store.lease_is(LEADER_LEASE, self.holder, token):
                self._token = None
                raise LeaseLostError(f"replica {self.holder}: the leader lease moved past "
                                     f"token {token}; nothing written")
            yield
