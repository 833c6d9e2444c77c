"""Cursor pagination of the fleet-sized lists, and bulk enrolment (all chips or none)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.verifier.conftest import Harness

_DEU = {"allowed": ["DEU"]}


async def _pages(h: Harness, path: str, limit: int) -> list[list[dict[str, Any]]]:
    pages, cursor = [], None
    while True:
        query = f"?limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        body = (await h.client.get(path + query, headers=h.dashboard)).json()
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages


@pytest.mark.asyncio
async def test_bulk_enrolment_then_every_chip_once_across_pages(harness: Harness) -> None:
    h = harness
    r = await h.post("/v1/chips/bulk", {"chips": [h.fleet.chip_body(f"chip-{i:02d}", _DEU)
                                                  for i in range(7)]})
    assert r.status_code == 200, r.text
    assert r.json() == {"enrolled": 7, "chip_ids": [f"chip-{i:02d}" for i in range(7)]}
    pages = await _pages(h, "/v1/chips", 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    assert [c["chip_id"] for p in pages for c in p] == [f"chip-{i:02d}" for i in range(7)]
    # A page that ends exactly at the last chip may still say "more"; the next one is empty.
    assert [len(p) for p in await _pages(h, "/v1/chips", 7)] in ([7], [7, 0])


@pytest.mark.asyncio
async def test_a_bad_chip_in_a_bulk_enrolment_stores_none(harness: Harness) -> None:
    h = harness
    bodies = [h.fleet.chip_body(f"chip-{i}", _DEU) for i in range(4)]
    bodies[2]["certificate"] = {**bodies[2]["certificate"], "serial": "tampered"}
    r = await h.post("/v1/chips/bulk", {"chips": bodies})
    assert r.status_code == 422
    assert "chips[2]: chip certificate rejected" in r.json()["detail"]
    assert (await h.client.get("/v1/chips", headers=h.dashboard)).json()["items"] == []
    assert h.service.keys.chips == {}  # the key cache rolled back with the transaction
    too_many = await h.post("/v1/chips/bulk", {"chips": [bodies[0]] * 1_001})
    assert too_many.status_code == 422


@pytest.mark.asyncio
async def test_a_revoked_or_unknown_policy_chip_is_named_and_none_is_stored(
        harness: Harness) -> None:
    """The checks a bulk enrolment reads from the database once (revocations, policies) still
    refuse the one bad chip by its position, and nothing of the request is stored."""
    h = harness
    assert (await h.post("/v1/revocations", {"kind": "chip", "match": "id", "value": "chip-3",
                                              "reason": "stolen"})).status_code == 200
    bodies = [h.fleet.chip_body(f"chip-{i}", _DEU) for i in range(5)]
    r = await h.post("/v1/chips/bulk", {"chips": bodies})
    assert r.status_code == 422
    assert r.json()["detail"].startswith("chips[3]: chip chip-3 is revoked")
    r = await h.post("/v1/chips/bulk", {"chips": [*bodies[:2], {**bodies[4], "policy": "nope"}]})
    assert r.status_code == 422
    assert r.json()["detail"] == "chips[2]: unknown policy 'nope'"
    assert (await h.client.get("/v1/chips", headers=h.dashboard)).json()["items"] == []
    assert h.service.keys.chips == {}


@pytest.mark.asyncio
async def test_bulk_re_enrolment_updates_chips_and_keeps_their_state(harness: Harness) -> None:
    h = harness
    bodies = [h.fleet.chip_body(f"chip-{i}", _DEU) for i in range(3)]
    assert (await h.post("/v1/chips/bulk", {"chips": bodies})).status_code == 200
    await h.service.db.run(lambda s: s.set_chip_state("chip-1", "verified", 123))
    again = [{**b, "owner": "new owner"} for b in bodies[1:]]
    r = await h.post("/v1/chips/bulk", {"chips": again})
    assert r.json() == {"enrolled": 2, "chip_ids": ["chip-1", "chip-2"]}
    chips = {c["chip_id"]: c for c in (await h.client.get(
        "/v1/chips", headers=h.dashboard)).json()["items"]}
    assert {i: c["owner"] for i, c in chips.items()} == {
        "chip-0": bodies[0]["owner"], "chip-1": "new owner", "chip-2": "new owner"}
    chip = await h.service.db.run(lambda s: s.chip("chip-1"))
    assert chip is not None and (chip.state, chip.state_since_unix_ns) == ("verified", 123)


@pytest.mark.asyncio
async def test_landmarks_by_page_and_bad_cursors(harness: Harness) -> None:
    h = harness
    for name, lat in (("AMS", 52.4), ("BER", 52.5), ("CDG", 49.0)):
        assert (await h.post("/v1/landmarks", h.fleet.landmark_body(name, lat, 5.0))
                ).status_code == 200
    pages = await _pages(h, "/v1/landmarks", 2)
    assert [[lm["landmark_id"] for lm in p] for p in pages] == [["AMS", "BER"], ["CDG"]]
    for path in ("/v1/landmarks?cursor=a%20b", "/v1/chips?limit=0", "/v1/chips?limit=1001"):
        assert (await h.client.get(path, headers=h.dashboard)).status_code == 422
