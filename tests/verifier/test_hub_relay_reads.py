"""The relay reads each event's payload once: each poll re-reads the look-back window's ids
(an id may commit after a larger one on PostgreSQL) but fetches only the rows it has not seen,
so a window full of bulk enrolments' key signals is not read again four times a second."""

from __future__ import annotations

import json

from verifier.hub import unseen_events
from verifier.store import Store

T0 = 1_700_000_000_000_000_000


def test_only_unseen_events_are_read(store: Store) -> None:
    chips = json.dumps({"kind": "chip", "ids": [f"chip-{i:07d}" for i in range(1_000)]})
    store.add_hub_events("replica-1", [("_key", chips), ("verdict", "{}"), (None, "ping")], T0)
    assert [row[0] for row in unseen_events(store, 0, set())] == [1, 2, 3]
    assert unseen_events(store, 0, {1, 2}) == [(3, "replica-1", None, "ping")]
    assert unseen_events(store, 1, {3}) == [(2, "replica-1", "verdict", "{}")]
    assert unseen_events(store, 0, {1, 2, 3}) == []
    store.add_hub_events("replica-2", [("_tasks", '{"rounds":4}')], T0)  # a later poll
    assert unseen_events(store, 0, {1, 2, 3}) == [(4, "replica-2", "_tasks", '{"rounds":4}')]
