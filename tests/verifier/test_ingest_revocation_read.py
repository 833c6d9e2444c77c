"""A group commit reads only the revocations that could name its keys (`Store.ingest_view`'s
`revocation_names`), not the whole table, which grows with the fleet's history: the read is
bounded, and every revocation that could refuse one of the group's records is still found
(by id, by public key, by a chip certificate's serial), on both backends."""

from __future__ import annotations

import base64
import secrets
import time
from collections.abc import Sequence
from typing import Any

import pytest

from protocol.revocation import Revocation
from tests.verifier.conftest import Harness
from tests.verifier.test_ingest_group import pending, record, setup
from verifier.ingest import IngestResult
from verifier.store import Store
from verifier.store.ingest import IngestView, RevocationName

T0 = 1_700_000_000_000_000_000


def test_the_view_holds_only_the_named_revocations(store: Store) -> None:
    unrelated = [Revocation("chip", "id", f"other-{i}", T0, "r") for i in range(300)]
    wanted = [Revocation("chip", "serial", "SN-1", T0 + 2, "r"),
              Revocation("landmark", "id", "lm-1", T0 + 1, "r"),
              Revocation("chip", "public_key", base64.b64encode(bytes(32)).decode(), T0, "r")]
    for revocation in [*unrelated[:150], *wanted, *unrelated[150:]]:
        assert store.add_revocation(revocation, "test")
    names: list[RevocationName] = [("chip", "id", "chip-1"), ("chip", "serial", "SN-1"),
                                   ("landmark", "id", "lm-1"), ("landmark", "id", "SN-1"),
                                   ("chip", "public_key", wanted[2].value)]
    view = store.ingest_view([], [], [], names * 2)  # repeated names read once
    assert view.revocations == wanted  # in the order they were stored
    assert store.ingest_view([], [], []).revocations == []
    many = [("chip", "id", f"x-{i}") for i in range(400)] + [("chip", "id", "other-7")]
    assert store.ingest_view([], [], [], many).revocations == [unrelated[7]]


class _Watched:
    """A store that keeps the views its group commits read."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self.views: list[IngestView] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)

    def ingest_view(self, batch_ids: Sequence[str], nonces: Sequence[bytes],
                    task_ids: Sequence[int],
                    revocation_names: Sequence[RevocationName] = ()) -> IngestView:
        view = self._store.ingest_view(batch_ids, nonces, task_ids, revocation_names)
        self.views.append(view)
        return view


@pytest.mark.asyncio
@pytest.mark.parametrize("match", ["id", "public_key", "serial"])
async def test_a_group_reads_its_keys_revocations_and_still_refuses(
        harness: Harness, match: str) -> None:
    s = await setup(harness)
    h = s.h
    landmark_id = sorted(s.tasks)[0]
    info = h.service.keys.infos["chip", "chip-1"]
    assert info.serial is not None
    value = {"id": "chip-1", "public_key": base64.b64encode(info.public_key).decode(),
             "serial": info.serial}[match]
    revoked = Revocation("chip", match, value, time.time_ns() - 1, "stolen")
    others = [Revocation("chip", "id", f"gone-{i}", 0, "old") for i in range(50)]

    def revoke(store: Store) -> None:
        for revocation in [*others[:25], revoked, *others[25:]]:
            assert store.add_revocation(revocation, "test")

    await h.service.db.run(revoke)
    group = [pending(s, landmark_id, [record(s, landmark_id)], f"b-{secrets.token_hex(8)}")]
    watched: list[_Watched] = []

    def commit(store: Store) -> None:
        watched.append(_Watched(store))
        h.service.ingestor._commit_group(watched[0], group, time.time_ns())

    await h.service.db.run(commit)
    answer = await group[0].future
    assert isinstance(answer, IngestResult)
    assert answer.rejected == ((0, "revoked"),)
    assert [view.revocations for view in watched[0].views] == [[revoked]]
