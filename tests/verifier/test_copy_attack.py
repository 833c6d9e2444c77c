"""The copy attack, end to end over real UDP: why a software key cannot prove location.

The chip's key is a file on its host. Its owner copies the file to a second agent beside the
landmarks (here: loopback, no delay) while the real chip sits far away (an agent that adds 40 ms
to every answer, ~6,000 km of light time: a host in another continent). Landmarks are real
`Prober`s timing real UDP round trips and uploading signed batches to a real verifier; the owner
registers the copy's address as the chip's endpoint.

- With a policy that accepts software keys the copy earns a false `verified`: the threat is real.
- With the production floor (tee-bound) the very same rounds never yield `verified`; the verdict
  is `inconclusive` with reason code `untrusted_key`, and the audit agrees.
"""

from __future__ import annotations

import queue
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from audit.verify import verify_bundle
from keystore.key_files import generate_key_file, load_signer
from landmark_node.prober import Prober
from protocol.challenger import ChallengerConfig, ChallengerCore, Target
from protocol.keys import SoftwareSigner
from protocol.records import MeasurementRecord
from protocol.responder import ResponderCore
from tests.verifier.conftest import Harness, open_harness
from tests.verifier.fleet import Fleet
from udp_io.responder_server import ResponderServer

# Three landmarks a few km apart around Kassel (central Germany, ~150 km from any border), so
# that loopback round trips (well under 1 ms: < 150 km) put the answerer inside Germany.
LANDMARKS = {"ks-a": (51.31, 9.48), "ks-b": (51.35, 9.42), "ks-c": (51.27, 9.55)}
FAR_DELAY_MS = 40  # the real chip: 40 ms of extra round trip is ~6,000 km of light time
MS = 1_000_000


@contextmanager
def agent(chip_id: str, signer: SoftwareSigner, fleet: Fleet,
          extra_delay_ms: int = 0) -> Iterator[ResponderServer]:
    core = ResponderCore({chip_id: signer},
                         {lm: key.public_key() for lm, key in fleet.landmark_keys.items()})
    server = ResponderServer(core, "127.0.0.1", 0, extra_delay_ns=extra_delay_ms * MS)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@contextmanager
def probers(fleet: Fleet) -> Iterator[dict[str, tuple[Prober, queue.SimpleQueue[Any]]]]:
    out: dict[str, tuple[Prober, queue.SimpleQueue[Any]]] = {}
    try:
        for landmark_id in LANDMARKS:
            records: queue.SimpleQueue[MeasurementRecord] = queue.SimpleQueue()
            core = ChallengerCore(landmark_id, fleet.landmark_keys[landmark_id],
                                  ChallengerConfig(timeout_ns=500 * MS, max_attempts=3))
            prober = Prober(core, "127.0.0.1", 0, records.put)
            prober.start()
            out[landmark_id] = (prober, records)
        yield out
    finally:
        for prober, _ in out.values():
            prober.stop()


async def measured_round(h: Harness, landmarks: dict[str, tuple[Prober, queue.SimpleQueue[Any]]],
                         chip_key: bytes, probes: int = 3) -> dict[str, Any]:
    """One verifier round, measured for real: each landmark takes its tasks, times `probes`
    challenge/response exchanges over UDP to the registered endpoint, and uploads them signed."""
    await h.service.tick(time.time_ns())
    for landmark_id, (prober, records) in landmarks.items():
        headers = await h.token("landmark", landmark_id)
        tasks = (await h.client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0",
                                    headers=headers)).json()["tasks"]
        targets = [Target("chip", t["target_id"], t["host"], t["port"], chip_key,
                          t["round_id"], t["task_id"]) for t in tasks]
        if not targets:
            continue
        got: list[MeasurementRecord] = []
        for _ in range(probes):
            prober.submit(targets)
            got.append(records.get(timeout=10))
        batch = h.fleet.batch(landmark_id, got)
        r = await h.post("/v1/measurements", batch.to_json(), headers)
        assert r.status_code == 200 and r.json()["accepted"] == len(got), r.text
    await h.service.tick(time.time_ns())
    r = await h.client.get("/v1/chips/gpu-1/verdicts", headers=h.dashboard)
    latest: dict[str, Any] = r.json()["items"][0]
    return latest


async def enrol(h: Harness, chip_key: SoftwareSigner, port: int) -> None:
    h.fleet.chip_keys["gpu-1"] = chip_key
    policy = {"round_interval_s": 0.01, "landmarks_per_round": 3, "round_timeout_s": 30.0,
              "dark_window_s": 3_600.0}
    assert (await h.client.put("/v1/policies/default", headers=h.admin,
                               json=policy)).status_code == 200
    for landmark_id, (lat, lon) in LANDMARKS.items():
        assert (await h.post("/v1/landmarks", h.fleet.landmark_body(landmark_id, lat, lon))
                ).status_code == 200
        headers = await h.token("landmark", landmark_id)
        await h.client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0", headers=headers)
    body = h.fleet.chip_body("gpu-1", {"allowed": ["DEU"]}) | {"port": port}
    assert (await h.post("/v1/chips", body)).status_code == 200


async def copy_attack(tmp_path: Path, floor: str) -> tuple[dict[str, Any], dict[str, Any],
                                                             dict[str, Any]]:
    """(verdict with the real chip answering, verdict with the copy answering, audit report)."""
    key_dir, stolen_dir = tmp_path / "host-keys", tmp_path / "attacker-vm"
    key_dir.mkdir()
    stolen_dir.mkdir()
    chip_key = generate_key_file(key_dir / "gpu-1.key")  # the enrolled software key
    shutil.copy2(key_dir / "gpu-1.key", stolen_dir / "gpu-1.key")  # all the attack takes
    copied_key = load_signer(stolen_dir / "gpu-1.key")
    fleet = Fleet.create()
    for landmark_id in LANDMARKS:
        fleet.landmark_keys[landmark_id] = SoftwareSigner.generate()
    async with open_harness(tmp_path / "verifier", fleet, min_key_protection=floor) as h:
        with (agent("gpu-1", chip_key, fleet, FAR_DELAY_MS) as real,
              agent("gpu-1", copied_key, fleet) as copy, probers(fleet) as landmarks):
            await enrol(h, chip_key, real.address[1])
            honest = await measured_round(h, landmarks, chip_key.public_key())
            # The owner points the chip's registered endpoint at the copy beside the landmarks.
            body = h.fleet.chip_body("gpu-1", {"allowed": ["DEU"]}) | {"port": copy.address[1]}
            assert (await h.post("/v1/chips", body)).status_code == 200
            attacked = await measured_round(h, landmarks, chip_key.public_key())
            assert copy.counters()["answered"] >= 3 and real.counters()["answered"] >= 3
        assert h.service.tree_heads is not None
        h.service.tree_heads.sign_if_grown(int(time.time()))
        log_key = h.service.tree_heads.public_key
        bundle = (await h.client.get("/v1/chips/gpu-1/evidence", headers=h.dashboard)).json()
    report = verify_bundle(
        bundle, ca_public_key=fleet.ca.public_key(), log_public_key=log_key
    ).to_json()
    return honest, attacked, report


@pytest.mark.asyncio
async def test_copied_software_key_is_falsely_verified_when_min_key_protection_is_software(
    tmp_path: Path,
) -> None:
    honest, attacked, report = await copy_attack(tmp_path, floor="software")
    # The real chip, far away, is not verified: its 40 ms answers allow half the planet.
    assert honest["verdict"] != "verified"
    assert min(lm["rtt_ms"] for lm in honest["landmarks"]) >= FAR_DELAY_MS
    # The copy beside the landmarks is: the false `verified` this attack buys.
    assert attacked["verdict"] == "verified", attacked["reason"]
    assert max(lm["rtt_ms"] for lm in attacked["landmarks"]) < FAR_DELAY_MS
    assert attacked["key_protection"] == "software" and "software key" in attacked["reason"]
    assert report["ok"], report["findings"]  # nothing in the evidence can tell the copy apart


@pytest.mark.asyncio
async def test_copied_software_key_is_never_verified_under_the_production_key_protection(
    tmp_path: Path,
) -> None:
    honest, attacked, report = await copy_attack(tmp_path, floor="tee-bound")
    assert honest["verdict"] != "verified"
    assert attacked["verdict"] == "inconclusive"
    assert attacked["reason_code"] == "untrusted_key"
    assert attacked["assessment"]["verdict"] == "verified"  # the geometry alone was fooled
    assert attacked["reason"].startswith("untrusted_key: software key")
    assert report["ok"], report["findings"]  # and the audit recomputes the same rule
