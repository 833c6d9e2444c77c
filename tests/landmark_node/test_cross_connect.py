"""`[[cross_connect]]`: a co-located landmark probes the chips beside it over its own link."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from landmark_node.config import CrossConnect, load_landmark_config
from landmark_node.errors import LandmarkConfigError
from landmark_node.service import LandmarkService
from landmark_node.sinks import FileSink
from protocol.responder import ResponderCore
from tests.landmark_node.test_service_spool import config, outbox_records, run_for
from tests.pki import make_pki
from udp_io.responder_server import ResponderServer

# Nothing listens here: a datagram sent to the task's own address is lost.
PUBLIC_HOST = "127.0.0.9"

_HEAD = (
    '[landmark]\nid = "lm-1"\nkey_file = "k"\nca_public_key = "c"\nchip_certs_dir = "d"\n'
    'landmark_certs_dir = "e"\nspool_path = "s"\noutbox_dir = "o"\n'
)


@pytest.mark.asyncio
@pytest.mark.parametrize("linked", [True, False])
async def test_a_task_for_a_cross_connected_host_is_measured_at_its_local_address(
    tmp_path: Path, linked: bool
) -> None:
    pki = make_pki(tmp_path)
    agent = ResponderServer(
        ResponderCore(dict(pki.chip_keys), {"lm-1": pki.landmark_keys["lm-1"].public_key()}),
        "127.0.0.1",
    )
    agent.start()
    try:
        cfg = dataclasses.replace(
            config(pki, tmp_path, agent.address[1]), round_interval_s=60.0, probes_per_task=2,
            probe_spacing_s=0.05,
            targets=({"kind": "chip", "id": "sim-0", "host": PUBLIC_HOST,
                      "port": agent.address[1]},),
            cross_connects=(CrossConnect(PUBLIC_HOST, "127.0.0.1"),) if linked else (),
        )
        service = LandmarkService(cfg, sink=FileSink(cfg.outbox_dir))
        await run_for(service, 0.8)
    finally:
        agent.stop()
    # Without the link the task's address answers nothing: the test can fail.
    assert bool(outbox_records(cfg.outbox_dir)) is linked


def test_cross_connects_load_from_the_config(tmp_path: Path) -> None:
    path = tmp_path / "landmark.toml"
    path.write_text(_HEAD + '[[cross_connect]]\npublic = "10.0.0.5"\nlocal = "192.168.1.5"\n')
    loaded = load_landmark_config(path)
    assert loaded.cross_connects == (CrossConnect("10.0.0.5", "192.168.1.5"),)
    assert loaded.local_host("10.0.0.5") == "192.168.1.5"
    assert loaded.local_host("10.0.0.6") == "10.0.0.6"


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ('[[cross_connect]]\npublic = "10.0.0.5"\n', "needs local"),
        ('[[cross_connect]]\npublic = ""\nlocal = "h"\n', "non-empty"),
        ('[[cross_connect]]\npublic = "a"\nlocal = "b"\nport = 1\n', "unknown keys"),
        ('[[cross_connect]]\npublic = "a"\nlocal = "b"\n[[cross_connect]]\npublic = "a"\n'
         'local = "c"\n', "cross-connected twice"),
    ],
)
def test_bad_cross_connects_are_refused(tmp_path: Path, entries: str, message: str) -> None:
    path = tmp_path / "landmark.toml"
    path.write_text(_HEAD + entries)
    with pytest.raises(LandmarkConfigError, match=message):
        load_landmark_config(path)
