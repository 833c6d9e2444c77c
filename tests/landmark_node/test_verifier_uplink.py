"""`lightfence landmark serve` with a `[verifier]` table, against a real verifier on loopback.

The verifier runs under uvicorn, the agent is a real UDP responder, and the landmark is the
real CLI in its own process: it long-polls its task, challenges the chip, and uploads a signed
batch that the verifier accepts and stores.
"""

from __future__ import annotations

import base64
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from keystore.cert_files import load_chip_certificate, load_landmark_certificate
from keystore.token_files import read_token_file
from landmark_node.config import load_landmark_config
from landmark_node.errors import LandmarkConfigError
from lightfence.cli import main
from protocol.responder import ResponderCore
from tests.pki import Pki, make_pki
from tests.served_verifier import serve_verifier
from udp_io.responder_server import ResponderServer
from verifier.app import create_app
from verifier.auth import issue_token
from verifier.config import default_config
from verifier.store import SqliteStore

REPO_ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def verifier(tmp_path: Path) -> Iterator[tuple[str, str, Pki]]:
    """(base url, admin token, pki) of a verifier serving on a free loopback port."""
    pki = make_pki(tmp_path / "pki", landmark_ids=("lm-1",), chip_count=1)
    data_dir = tmp_path / "verifier"
    data_dir.mkdir()
    port = _free_port()
    config = default_config(
        data_dir=data_dir, port=port, tick_s=0.2, min_key_protection="software",
        ca_public_key_b64=base64.b64encode(pki.ca.public_key()).decode(),
    )
    store = SqliteStore(config.db_path)
    _, admin = issue_token(store, role="admin", label="ops", landmark_id=None,
                           now_unix_ns=time.time_ns())
    store.close()
    with serve_verifier(create_app(config), port) as url:
        yield url, admin, pki


def _write_landmark_toml(root: Path, pki: Pki, url: str, token_file: str) -> Path:
    path = root / "landmark.toml"
    path.write_text(f"""
[landmark]
id = "lm-1"
key_file = "{pki.root / 'keys' / 'lm-1.key'}"
ca_public_key = "{pki.ca_pub}"
chip_certs_dir = "{pki.chip_certs}"
landmark_certs_dir = "{pki.landmark_certs}"
spool_path = "var/spool.sqlite3"
outbox_dir = "var/outbox"
host = "127.0.0.1"
challenge_port = 0
responder_port = -1

[batch]
interval_s = 0.2

[verifier]
url = "{url}"
token_file = "{token_file}"
poll_wait_s = 1
""")
    return path


def test_landmark_pulls_task_measures_and_verifier_accepts(
    verifier: tuple[str, str, Pki], tmp_path: Path
) -> None:
    url, admin_token, pki = verifier
    agent = ResponderServer(
        ResponderCore(dict(pki.chip_keys), {"lm-1": pki.landmark_keys["lm-1"].public_key()}),
        "127.0.0.1",
    )
    agent.start()
    admin = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_token}"})
    landmark: subprocess.Popen[bytes] | None = None
    try:
        lm_cert = load_landmark_certificate(pki.landmark_certs / "lm-1.json")
        chip_cert = load_chip_certificate(pki.chip_certs / "sim-0.json")
        assert admin.put("/v1/policies/default", json={
            "round_interval_s": 1.0, "landmarks_per_round": 1, "round_timeout_s": 10.0,
            "dark_window_s": 600.0}).status_code == 200
        assert admin.post("/v1/landmarks", json={
            "certificate": lm_cert.to_json(), "host": "127.0.0.1", "port": 9}).status_code == 200
        assert admin.post("/v1/chips", json={
            "certificate": chip_cert.to_json(), "owner": "acme", "host": "127.0.0.1",
            "port": agent.address[1], "licence": {"allowed": ["DEU"]},
            "policy": "default"}).status_code == 200
        created = admin.post("/v1/tokens", json={"role": "landmark", "label": "lm-1",
                                                 "landmark_id": "lm-1"})
        assert created.status_code == 200
        token_path = tmp_path / "lm-1.token"
        fd = os.open(token_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, (created.json()["token"] + "\n").encode())
        os.close(fd)
        config_path = _write_landmark_toml(tmp_path, pki, url, token_path.name)

        landmark = subprocess.Popen(
            [sys.executable, "-m", "lightfence", "--log-level", "INFO", "landmark", "serve",
             "--config", str(config_path)],
            cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 30
        accepted = 0
        while accepted < 1:
            assert landmark.poll() is None, landmark.communicate()[0].decode()
            assert time.monotonic() < deadline, "the verifier never stored a measurement"
            time.sleep(0.2)
            accepted = admin.get("/v1/stats").json()["measurements_accepted_total"]
        chip = admin.get("/v1/chips/sim-0").json()
        assert chip["last_response_unix_ns"] is not None
        assert agent.counters()["answered"] >= 1
        stats = admin.get("/v1/stats").json()
        assert stats["measurements_rejected_by_reason"] == {}
        landmark.send_signal(signal.SIGTERM)
        output, _ = landmark.communicate(timeout=30)
        assert landmark.returncode == 0, output.decode()
        assert "tasks from http://127.0.0.1" in output.decode()
    finally:
        if landmark is not None and landmark.poll() is None:
            landmark.kill()
            landmark.wait()
        admin.close()
        agent.stop()


def test_world_readable_token_is_refused_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pki = make_pki(tmp_path / "pki", chip_count=0)
    token_path = tmp_path / "lm-1.token"
    token_path.write_text("secret-token\n")
    token_path.chmod(0o644)
    config_path = _write_landmark_toml(tmp_path, pki, "http://127.0.0.1:9", token_path.name)
    assert main(["landmark", "serve", "--config", str(config_path)]) == 1
    err = capsys.readouterr().err
    assert "accessible by group or others" in err and "chmod 600" in err
    assert token_path.read_text() == "secret-token\n"  # nothing rewritten
    assert not (tmp_path / "var").exists()  # refused before any spool was created
    token_path.chmod(0o600)
    assert read_token_file(token_path) == "secret-token"


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ('url = "ftp://x"\ntoken_file = "t"', "needs url"),
        ('url = "http://x"', "needs token_file"),
        ('url = "http://x"\ntoken_file = "t"\npoll_wait_s = 31', "poll_wait_s"),
        ('url = "http://x"\ntoken_file = "t"\ntoken = "inline"', "unknown keys"),
    ],
)
def test_bad_verifier_table_is_refused(tmp_path: Path, table: str, message: str) -> None:
    path = tmp_path / "landmark.toml"
    path.write_text(
        '[landmark]\nid = "lm-1"\nkey_file = "k"\nca_public_key = "c"\nchip_certs_dir = "d"\n'
        'landmark_certs_dir = "e"\nspool_path = "s"\noutbox_dir = "o"\n'
        f"[verifier]\n{table}\n"
    )
    with pytest.raises(LandmarkConfigError, match=message):
        load_landmark_config(path)


def test_verifier_table_excludes_config_targets(tmp_path: Path) -> None:
    path = tmp_path / "landmark.toml"
    path.write_text(
        '[landmark]\nid = "lm-1"\nkey_file = "k"\nca_public_key = "c"\nchip_certs_dir = "d"\n'
        'landmark_certs_dir = "e"\nspool_path = "s"\noutbox_dir = "o"\n'
        '[verifier]\nurl = "http://x"\ntoken_file = "t"\n'
        '[[targets]]\nkind = "chip"\nid = "sim-0"\nhost = "127.0.0.1"\nport = 1\n'
    )
    with pytest.raises(LandmarkConfigError, match="remove"):
        load_landmark_config(path)
    path.write_text(path.read_text().split("[[targets]]")[0])
    loaded = load_landmark_config(path)
    assert loaded.verifier is not None
    assert loaded.verifier.url == "http://x" and loaded.verifier.token_file == tmp_path / "t"
    assert loaded.verifier.poll_wait_s == 20.0
