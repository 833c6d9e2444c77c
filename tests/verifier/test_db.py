"""`Db.run` dispatches a protocol method (`Store.x`, also of the protocols `Store` is made of)
to the implementation's method of that name, on the database thread."""

from __future__ import annotations

import pytest

from protocol.revocation import Revocation
from verifier.db import Db
from verifier.store import Store


@pytest.mark.asyncio
async def test_every_protocol_part_reaches_the_implementation(store: Store) -> None:
    db = Db(store)
    try:
        revocation = Revocation("chip", "id", "chip-1", 1, "stolen")
        assert await db.run(Store.add_revocation, revocation, "bob") is True
        assert await db.run(Store.revocations) == [revocation]  # a RevocationStore method
        assert await db.run(Store.channels) == []  # an OpsStore method
        assert await db.run(Store.acquire_lease, "leader", "r1", 1, 10) == 1  # ReplicaStore
        assert await db.run(Store.get_kv, "nope") is None
    finally:
        db.close()
