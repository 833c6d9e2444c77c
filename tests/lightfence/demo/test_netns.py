"""Landmark and agent on two hosts: network namespaces joined by a veth pair (root only).

The addresses live only inside the two namespaces this test creates and deletes.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from protocol.records import MeasurementBatch, verify_batch, verify_record
from tests.pki import make_pki

pytestmark = pytest.mark.netns

AGENT_IP = "10.213.0.1"
LANDMARK_IP = "10.213.0.2"


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, text=True)


def _netns_unavailable() -> str | None:
    if os.geteuid() != 0:
        return "needs root to create network namespaces"
    if shutil.which("ip") is None:
        return "iproute2 (`ip`) is not installed"
    probe = f"lfprobe{os.getpid()}"
    try:
        _ip("netns", "add", probe)
    except subprocess.CalledProcessError as exc:
        return f"`ip netns add` does not work here: {exc.stderr.strip()}"
    _ip("netns", "del", probe)
    return None


@pytest.fixture
def two_hosts() -> Iterator[tuple[str, str]]:
    reason = _netns_unavailable()
    if reason is not None:
        pytest.skip(reason)
    suffix = str(os.getpid() % 100000)
    agent_ns, landmark_ns = f"lfa{suffix}", f"lfb{suffix}"
    _ip("netns", "add", agent_ns)
    _ip("netns", "add", landmark_ns)
    try:
        _ip("link", "add", f"lfva{suffix}", "type", "veth", "peer", "name", f"lfvb{suffix}")
        for ns, dev, address in ((agent_ns, f"lfva{suffix}", AGENT_IP),
                                 (landmark_ns, f"lfvb{suffix}", LANDMARK_IP)):
            _ip("link", "set", dev, "netns", ns)
            _ip("-n", ns, "addr", "add", f"{address}/30", "dev", dev)
            _ip("-n", ns, "link", "set", dev, "up")
            _ip("-n", ns, "link", "set", "lo", "up")
        yield agent_ns, landmark_ns
    finally:
        _ip("netns", "del", agent_ns)
        _ip("netns", "del", landmark_ns)


def _world(root: Path) -> tuple[bytes, bytes]:
    pki = make_pki(root, landmark_ids=("lm-ns",), chip_ids=("gpu-ns-01",))
    (root / "agent.toml").write_text(
        f'[agent]\nhost = "{AGENT_IP}"\nport = 7500\nca_public_key = "ca.pub.json"\n'
        'landmark_certs_dir = "certs/landmarks"\nkey_dir = "keys/chips"\n'
        'software_chips = ["gpu-ns-01"]\n')
    (root / "landmark.toml").write_text(
        '[landmark]\nid = "lm-ns"\nkey_file = "keys/lm-ns.key"\n'
        'ca_public_key = "ca.pub.json"\nchip_certs_dir = "certs/chips"\n'
        'landmark_certs_dir = "certs/landmarks"\nspool_path = "var/spool.sqlite3"\n'
        f'outbox_dir = "var/outbox"\nhost = "{LANDMARK_IP}"\nchallenge_port = 7400\n'
        "responder_port = -1\n\n[schedule]\nround_interval_s = 0.5\n\n[batch]\n"
        "interval_s = 0.2\n\n[[targets]]\n"
        f'kind = "chip"\nid = "gpu-ns-01"\nhost = "{AGENT_IP}"\nport = 7500\n')
    return pki.landmark_keys["lm-ns"].public_key(), pki.chip_keys["gpu-ns-01"].public_key()


def test_landmark_measures_agent_in_another_namespace(
    two_hosts: tuple[str, str], tmp_path: Path
) -> None:
    agent_ns, landmark_ns = two_hosts
    landmark_key, chip_key = _world(tmp_path)
    lightfence = [sys.executable, "-m", "lightfence"]
    processes = [
        subprocess.Popen(["ip", "netns", "exec", agent_ns, *lightfence, "agent", "run",
                          "--config", str(tmp_path / "agent.toml")], stderr=subprocess.PIPE),
        subprocess.Popen(["ip", "netns", "exec", landmark_ns, *lightfence, "landmark", "serve",
                          "--config", str(tmp_path / "landmark.toml")], stderr=subprocess.PIPE),
    ]
    outbox = tmp_path / "var" / "outbox"
    try:
        deadline = time.monotonic() + 60
        batches: list[MeasurementBatch] = []
        while time.monotonic() < deadline and not any(b.records for b in batches):
            time.sleep(0.5)
            batches = [MeasurementBatch.from_json(json.loads(path.read_text()))
                       for path in sorted(outbox.glob("*.json"))] if outbox.exists() else []
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=20)
    records = [record for batch in batches for record in batch.records]
    assert records, "no measurement crossed the veth pair"
    for batch in batches:
        verify_batch(batch, landmark_key)
    for record in records:
        verify_record(record, landmark_key, chip_key)
        assert record.target_id == "gpu-ns-01"
        assert record.rtt_ns > 0
