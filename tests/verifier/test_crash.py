"""kill -9 of a real verifier process during ingestion loses nothing it acknowledged (on
SQLite and on PostgreSQL)."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from benchmarks.ingest import _free_port, enrol, start_verifier
from tests.verifier.fleet import Fleet
from verifier.config import default_config
from verifier.store import open_store


@pytest.mark.slow
def test_kill_9_during_ingestion_then_retry(tmp_path: Path, database_url: str) -> None:
    fleet = Fleet.create()
    port = _free_port()
    proc, admin, _ = start_verifier(tmp_path, fleet.ca_b64, port, tick_s=0.1,
                                    database_url=database_url)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10.0,
                          headers={"Authorization": f"Bearer {admin}"}) as client:
            tokens = enrol(client, fleet, chips=2)
            time.sleep(0.5)  # the scheduler plans a round (tasks) for both chips
            record = fleet.record("FRA", "chip-0", 3.0)
            replay_batches = [fleet.batch("FRA", [record]), fleet.batch("FRA", [record])]
            auth = {"Authorization": f"Bearer {tokens['FRA']}"}
            for batch in replay_batches:  # the second one raises replay_detected
                client.post("/v1/measurements", json=batch.to_json(), headers=auth
                            ).raise_for_status()
            alerts_before = client.get("/v1/alerts").json()["items"]
            assert [a["type"] for a in alerts_before] == ["replay_detected"]
        batches = [fleet.batch("FRA", [fleet.record("FRA", f"chip-{i % 2}", 3.0)
                                       for i in range(20)]) for _ in range(60)]
        acknowledged: list[str] = []

        def upload() -> None:
            with httpx.Client(base_url=base, timeout=5.0, headers=auth) as client:
                for batch in batches:
                    try:
                        r = client.post("/v1/measurements", json=batch.to_json())
                    except httpx.HTTPError:
                        return
                    if r.status_code == 200:
                        acknowledged.append(batch.batch_id)

        uploader = threading.Thread(target=upload)
        uploader.start()
        while len(acknowledged) < 10 and uploader.is_alive():
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        uploader.join(30)
        assert 10 <= len(acknowledged) < len(batches)
        proc, admin, _ = start_verifier(tmp_path, fleet.ca_b64, port, tick_s=0.1,
                                        database_url=database_url)
        with httpx.Client(base_url=base, timeout=10.0, headers=auth) as client:
            # The landmark retries everything still in its spool, acknowledged or not.
            results = [client.post("/v1/measurements", json=b.to_json()).json()
                       for b in batches]
        duplicates = {r["batch_id"] for r in results if r["duplicate"]}
        assert set(acknowledged) <= duplicates
        assert all(r["accepted"] == 20 for r in results)
        with httpx.Client(base_url=base, timeout=10.0,
                          headers={"Authorization": f"Bearer {admin}"}) as client:
            alerts_after = client.get("/v1/alerts").json()["items"]
        assert alerts_after == alerts_before
    finally:
        proc.kill()
        proc.wait(10)
    # Each nonce is stored once (a unique index on both backends), so the count says no record
    # was stored twice and none is missing.
    store = open_store(default_config(data_dir=tmp_path, database_url=database_url))
    try:
        assert store.count_measurements() == 1 + 20 * len(batches)
        for batch in batches:
            stored = store.batch_record(batch.batch_id)
            assert stored is not None and json.loads(stored[1])["batch_id"] == batch.batch_id
    finally:
        store.close()
