"""Retention: a year of simulated rounds keeps the operational database under a stated size,
pruning only what is older than the policy, and each chip keeps its latest verdict.

The simulation writes through the real store: one chip, a round every hour with six landmark
measurements (real signed records, as uploaded), a verdict per round carrying a real geo
assessment, and a pruning pass each simulated day with the default 30-day measurement and a
90-day verdict policy. The evidence log is off here: it is the append-only record and is never
pruned (docs/operations.md gives its growth per verdict).
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest

from geo.assess import assess
from geo.licence import licence_from_json
from geo.measurement import LandmarkRtt
from tests.verifier.fleet import Fleet
from verifier.config import default_config
from verifier.errors import ConfigError
from verifier.model import Chip, Round, StoredMeasurement
from verifier.retention import RetentionPolicy, prune
from verifier.store import SqliteStore, Store

_NS = 1_000_000_000
DAY_NS = 86_400 * _NS
LANDMARKS = [("lm-fra", 50.11, 8.68), ("lm-ber", 52.52, 13.40), ("lm-muc", 48.14, 11.58),
             ("lm-ham", 53.55, 9.99), ("lm-cgn", 50.94, 6.96), ("lm-lei", 51.34, 12.37)]
ROUNDS_PER_DAY = 24
POLICY = RetentionPolicy(measurements_s=30 * 86_400.0, verdicts_s=90 * 86_400.0,
                         log_s=90 * 86_400.0)
# The stated bound (docs/operations.md): one chip with hourly rounds of six landmarks stays
# under this many bytes of database, however long it runs.
STATED_LIMIT_BYTES = 12 * 1024 * 1024


def _db_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.glob(path.name + "*"))


def _day(store: SqliteStore, day: int, start_ns: int, record_json: str,
         assessment: dict[str, object]) -> None:
    with store.transaction():  # one commit per simulated day keeps the simulation quick
        for hour in range(ROUNDS_PER_DAY):
            _round(store, day, hour, start_ns=start_ns, record_json=record_json,
                   assessment=assessment)


def _round(store: SqliteStore, day: int, hour: int, *, start_ns: int, record_json: str,
           assessment: dict[str, object]) -> None:
    t = start_ns + day * DAY_NS + hour * 3_600 * _NS
    round_id = f"r-{day}-{hour}"
    store.add_round(Round(round_id, "chip", "chip-1", t, t + 30 * _NS),
                    [(lm, "127.0.0.1", 7000) for lm, _, _ in LANDMARKS])
    tasks = {task.landmark_id: task.task_id for task in store.round_tasks(round_id)}
    # One upload per round keeps the simulation quick; the rows are what six would write.
    rows = [StoredMeasurement(f"b-{round_id}", lm, "chip", "chip-1",
                              secrets.token_bytes(32), t, 4_000_000, "kernel", round_id,
                              tasks[lm], record_json) for lm, _, _ in LANDMARKS]
    store.ingest(f"b-{round_id}", "lm-fra", rows, "{}", t)
    store.close_round(round_id)
    store.add_verdict("chip-1", round_id=round_id, verdict="verified",
                      created_unix_ns=t + 30 * _NS, measurement_ids=list(range(6)),
                      landmarks=[], assessment=assessment, reason="",
                      licence={"allowed": ["DEU"]})


def test_a_year_of_rounds_stays_under_the_stated_size(tmp_path: Path) -> None:
    fleet = Fleet.create()
    for lm, lat, lon in LANDMARKS:
        fleet.landmark_body(lm, lat, lon)
    fleet.chip_body("chip-1", {"allowed": ["DEU"]})
    record_json = json.dumps(fleet.record("lm-fra", "chip-1", 4.0).to_json(),
                             separators=(",", ":"))
    assessment = assess([LandmarkRtt(lm, lat, lon, 4.0) for lm, lat, lon in LANDMARKS],
                        licence_from_json({"allowed": ["DEU"]})).to_json()
    path = tmp_path / "v.sqlite3"
    store = SqliteStore(path)
    start_ns = 1_700_000_000 * _NS
    store.put_chip(Chip("chip-1", "o", "m", "s", None, None, "default", b"k" * 32, {},
                        {"allowed": ["DEU"]}, "verified", start_ns, None, start_ns, start_ns))
    sizes = {}
    for day in range(365):
        _day(store, day, start_ns, record_json, assessment)
        prune(store, POLICY, start_ns + (day + 1) * DAY_NS)
        if day in (120, 364):
            store._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            sizes[day] = _db_bytes(path)
    measurements = store.count_measurements()
    verdicts = len(store.verdicts("chip-1", None, 10**6))
    store.close()
    # Only the retention window is left...
    assert measurements <= (30 + 1) * ROUNDS_PER_DAY * len(LANDMARKS)
    assert verdicts <= (90 + 1) * ROUNDS_PER_DAY
    # ...so the file stops growing once the longest window is full (SQLite reuses freed pages).
    print(json.dumps({"bytes_day_121": sizes[120], "bytes_day_365": sizes[364],
                      "record_bytes": len(record_json),
                      "assessment_bytes": len(json.dumps(assessment))}))
    assert sizes[364] <= sizes[120] * 1.1
    assert sizes[364] < STATED_LIMIT_BYTES


def test_pruning_keeps_each_chips_latest_verdict(store: Store) -> None:
    for chip_id, t in (("old", 1), ("new", 5 * DAY_NS)):
        store.add_verdict(chip_id, round_id="r", verdict="dark", created_unix_ns=t,
                          measurement_ids=[], landmarks=[], assessment=None, reason="",
                          licence={})
    store.add_verdict("new", round_id="r2", verdict="dark", created_unix_ns=6 * DAY_NS,
                      measurement_ids=[], landmarks=[], assessment=None, reason="", licence={})
    assert store.prune_verdicts(10 * DAY_NS, 100) == 1  # "new"'s older verdict only
    assert [v.round_id for v in store.verdicts("new", None, 10)] == ["r2"]
    assert [v.round_id for v in store.verdicts("old", None, 10)] == ["r"]


def test_retention_shorter_than_the_freshness_window_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="retention_measurements_s must be at least"):
        default_config(data_dir=tmp_path, retention_measurements_s=3_600.0)


def test_pruning_goes_in_bounded_passes(store: Store) -> None:
    for i in range(7):
        store.add_verdict("c", round_id=f"r{i}", verdict="dark", created_unix_ns=i,
                          measurement_ids=[], landmarks=[], assessment=None, reason="",
                          licence={})
    policy = RetentionPolicy(measurements_s=86_400.0, verdicts_s=1.0, log_s=1.0)
    now = 10 * _NS
    passes = [prune(store, policy, now, limit=4)["verdicts"] for _ in range(3)]
    assert passes == [4, 2, 0]  # the latest verdict stays
    assert [v.round_id for v in store.verdicts("c", None, 10)] == ["r6"]


@pytest.mark.asyncio
async def test_after_pruning_the_verdicts_records_are_still_in_its_evidence(
        tmp_path: Path) -> None:
    import time

    from audit.verify import verify_bundle
    from tests.verifier.conftest import open_harness
    from tests.verifier.test_flow import KASSEL, run_round, setup_germany
    from verifier.store import Store

    async with open_harness(tmp_path, tree_head_interval_s=3600.0) as h:
        await setup_germany(h)
        await run_round(h, "chip-1", KASSEL)
        [verdict] = (await h.client.get("/v1/chips/chip-1/verdicts",
                                        headers=h.dashboard)).json()["items"]
        assert verdict["measurement_ids"]
        later = time.time_ns() + 400 * DAY_NS  # past every retention window
        deleted = await h.service.db.run(prune, POLICY, later)
        assert deleted["measurements"] == len(verdict["measurement_ids"])
        assert await h.service.db.run(Store.count_measurements) == 0
        assert h.service.tree_heads is not None
        h.service.tree_heads.sign_if_grown(int(time.time()))
        bundle = (await h.client.get("/v1/chips/chip-1/evidence", headers=h.admin)).json()
        kept = (await h.client.get("/v1/chips/chip-1", headers=h.dashboard)).json()
        assert kept["last_verdict"]["verdict_id"] == verdict["verdict_id"]  # latest kept
    [entry] = [e["entry"] for e in bundle["entries"] if e["kind"] == "verdict"]
    assert len(entry["records"]) == len(verdict["measurement_ids"])
    report = verify_bundle(bundle, ca_public_key=h.fleet.ca.public_key(),
                           log_public_key=h.service.tree_heads.public_key)
    assert report.ok, report.findings
