"""The landmark service end to end, and the spool surviving restarts without loss or duplicates."""

from __future__ import annotations

import asyncio
import dataclasses
import json
from pathlib import Path

import pytest

from landmark_node.config import LandmarkConfig, load_landmark_config
from landmark_node.errors import LandmarkConfigError
from landmark_node.service import LandmarkService
from landmark_node.sinks import FileSink
from landmark_node.spool import Spool
from protocol.records import MeasurementBatch, verify_batch, verify_record
from protocol.responder import ResponderCore
from tests.pki import Pki, make_pki
from udp_io.responder_server import ResponderServer


class FailingSink:
    def __init__(self) -> None:
        self.attempts = 0

    async def deliver(self, batch: MeasurementBatch) -> None:
        self.attempts += 1
        raise ConnectionError("verifier unreachable")


class AckLostSink(FileSink):
    """Stores the batch, then 'loses' the acknowledgement: the worst case for duplicates."""

    async def deliver(self, batch: MeasurementBatch) -> None:
        await super().deliver(batch)
        raise ConnectionError("acknowledgement lost")


def config(pki: Pki, tmp_path: Path, agent_port: int) -> LandmarkConfig:
    return LandmarkConfig(
        landmark_id="lm-1",
        key_file=pki.root / "keys" / "lm-1.key",
        ca_public_key=pki.ca_pub,
        chip_certs_dir=pki.chip_certs,
        landmark_certs_dir=pki.landmark_certs,
        spool_path=tmp_path / "var" / "spool.sqlite3",
        outbox_dir=tmp_path / "var" / "outbox",
        host="127.0.0.1",
        challenge_port=0,
        responder_port=0,
        round_interval_s=0.2,
        timeout_s=0.2,
        batch_interval_s=0.1,
        batch_max_records=3,
        targets=tuple(
            {"kind": "chip", "id": f"sim-{i}", "host": "127.0.0.1", "port": agent_port}
            for i in range(2)
        ),
    )


async def run_for(service: LandmarkService, seconds: float) -> None:
    stop = asyncio.Event()
    asyncio.get_running_loop().call_later(seconds, stop.set)
    await service.run(stop)


def outbox_records(outbox: Path) -> list[bytes]:
    nonces: list[bytes] = []
    for path in sorted(outbox.glob("*.json")):
        batch = MeasurementBatch.from_json(json.loads(path.read_text()))
        assert path.stem == batch.batch_id
        nonces.extend(record.nonce for record in batch.records)
    return nonces


@pytest.mark.asyncio
async def test_spool_survives_restart_nothing_lost_or_duplicated(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    agent = ResponderServer(
        ResponderCore(dict(pki.chip_keys), {"lm-1": pki.landmark_keys["lm-1"].public_key()}),
        "127.0.0.1",
    )
    agent.start()
    try:
        cfg = config(pki, tmp_path, agent.address[1])
        down = FailingSink()
        first = LandmarkService(cfg, sink=down)
        await run_for(first, 0.7)
        measured_first = first.prober.core.counters["measured"]
        assert measured_first >= 4 and down.attempts > 0
        assert not cfg.outbox_dir.exists() or not list(cfg.outbox_dir.glob("*.json"))

        flaky = LandmarkService(cfg, sink=AckLostSink(cfg.outbox_dir))
        await run_for(flaky, 0.3)
        measured_second = flaky.prober.core.counters["measured"]

        final = LandmarkService(cfg, sink=FileSink(cfg.outbox_dir))
        assert await final.deliver_pending() > 0  # the un-acknowledged batches are resent
        final.spool.close()
    finally:
        agent.stop()
    nonces = outbox_records(cfg.outbox_dir)
    assert len(nonces) == len(set(nonces)) == measured_first + measured_second
    stats = Spool(cfg.spool_path).stats()
    assert stats["pending_batches"] == 0 and stats["unbatched_records"] == 0


@pytest.mark.asyncio
async def test_batches_verify_and_mesh_probe_between_landmarks(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, landmark_ids=("lm-1", "lm-2"), chip_count=1)
    peer_core = ResponderCore(
        {"lm-2": pki.landmark_keys["lm-2"]}, {"lm-1": pki.landmark_keys["lm-1"].public_key()}
    )
    peer = ResponderServer(peer_core, "127.0.0.1")  # lm-2's responder_port
    peer.start()
    try:
        cfg = config(pki, tmp_path, 0)
        cfg = LandmarkConfig(
            **{
                **{f: getattr(cfg, f) for f in cfg.__dataclass_fields__},
                "targets": (
                    {
                        "kind": "landmark",
                        "id": "lm-2",
                        "host": "127.0.0.1",
                        "port": peer.address[1],
                    },
                ),
            }
        )
        service = LandmarkService(cfg)
        await run_for(service, 0.5)
    finally:
        peer.stop()
    batches = [
        MeasurementBatch.from_json(json.loads(p.read_text())) for p in cfg.outbox_dir.glob("*.json")
    ]
    records = [r for b in batches for r in b.records]
    assert records and all(r.target_kind == "landmark" and r.target_id == "lm-2" for r in records)
    for batch in batches:
        verify_batch(batch, pki.landmark_keys["lm-1"].public_key())
    verify_record(
        records[0], pki.landmark_keys["lm-1"].public_key(), pki.landmark_keys["lm-2"].public_key()
    )


def test_example_config_loads() -> None:
    cfg = load_landmark_config(Path(__file__).parents[2] / "examples" / "landmark.toml")
    assert cfg.landmark_id == "lm-berlin" and len(cfg.targets) == 3
    assert cfg.responder_port == 7401


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[landmark]\nid = 'x'\n", "needs key_file"),
        ("nonsense = [", "cannot read landmark config"),
        ("[other]\n", "missing \\[landmark\\]"),
        (
            "[landmark]\nid = 'x'\nkey_file = 'k'\nca_public_key = 'c'\nchip_certs_dir = 'd'\n"
            "landmark_certs_dir = 'e'\nspool_path = 's'\noutbox_dir = 'o'\n"
            "[schedule]\ntimeout_s = 1.0\nchallenge_lifetime_s = 2.0\n",
            "must exceed twice",
        ),
        (
            "[landmark]\nid = 'x'\nkey_file = 'k'\nca_public_key = 'c'\nchip_certs_dir = 'd'\n"
            "landmark_certs_dir = 'e'\nspool_path = 's'\noutbox_dir = 'o'\n"
            "[schedule]\nprobes_per_task = 0\n",
            "probes_per_task must be 1..16",
        ),
    ],
)
def test_bad_landmark_config(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "landmark.toml"
    path.write_text(text)
    with pytest.raises(LandmarkConfigError, match=message):
        load_landmark_config(path)


@pytest.mark.asyncio
async def test_each_task_is_probed_several_times_with_fresh_nonces(tmp_path: Path) -> None:
    pki = make_pki(tmp_path)
    agent = ResponderServer(
        ResponderCore(dict(pki.chip_keys), {"lm-1": pki.landmark_keys["lm-1"].public_key()}),
        "127.0.0.1",
    )
    agent.start()
    try:
        cfg = dataclasses.replace(
            config(pki, tmp_path, agent.address[1]), round_interval_s=60.0, probes_per_task=3,
            probe_spacing_s=0.05, targets=({"kind": "chip", "id": "sim-0",
                                            "host": "127.0.0.1", "port": agent.address[1]},),
        )
        service = LandmarkService(cfg, sink=FileSink(cfg.outbox_dir))
        await run_for(service, 0.8)
    finally:
        agent.stop()
    nonces = outbox_records(cfg.outbox_dir)
    assert len(nonces) == len(set(nonces)) == 3  # one round, three independent probes
