"""GPU attestation end to end: a fake NVML (reports in the real SPDM layout, signed by a test
NVIDIA-shaped chain) behind the real agent code, against a real verifier over real HTTP."""

from __future__ import annotations

import base64
import json
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import serialization

from device_agent.errors import GpuAttestationUnavailableError
from device_agent.gpu_attestation import attest_chip, read_gpu_evidence
from keystore.key_files import generate_key_file
from lightfence.cli import main
from protocol.gpu_attestation import attestation_nonce
from tests.dashboard.fleet import free_port
from tests.protocol.gpu_fixtures import FakeGpu, make_gpu
from tests.served_verifier import serve_verifier
from tests.verifier.fleet import Fleet
from verifier import attestation
from verifier.app import create_app
from verifier.auth import issue_token
from verifier.config import default_config
from verifier.store import SqliteStore

ATTESTATION_REPORT_SIZE = 0x2000  # NVML_CC_GPU_ATTESTATION_REPORT_SIZE
ATTESTATION_CERT_CHAIN_SIZE = 0x1400  # NVML_GPU_ATTESTATION_CERT_CHAIN_SIZE


class FakeNvml:
    """The pynvml calls the agent makes, answering like NVML: fixed-size buffers plus sizes."""

    def __init__(self, gpu: FakeGpu | None, error: str | None = None) -> None:
        self.gpu, self.error = gpu, error
        self.nonces: list[bytes] = []
        self.initialised = 0

    def nvmlInit(self) -> None:
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.initialised -= 1

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        return index

    def nvmlDeviceGetConfComputeGpuAttestationReport(
            self, handle: int, nonce: bytes) -> SimpleNamespace:
        if self.error is not None or self.gpu is None:
            raise RuntimeError(self.error or "no GPU")
        self.nonces.append(bytes(nonce))
        report = self.gpu.report(bytes(nonce))
        return SimpleNamespace(attestationReportSize=len(report), isCecAttestationReportPresent=0,
                               attestationReport=report.ljust(ATTESTATION_REPORT_SIZE, b"\0"))

    def nvmlDeviceGetConfComputeGpuCertificate(self, handle: int) -> SimpleNamespace:
        assert self.gpu is not None
        chain = self.gpu.chain_pem()
        return SimpleNamespace(attestationCertChainSize=len(chain),
                               attestationCertChain=chain.ljust(ATTESTATION_CERT_CHAIN_SIZE, b"\0"))


@dataclass
class Verifier:
    url: str
    admin: str
    fleet: Fleet
    gpu: FakeGpu
    data_dir: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.admin}"})


@pytest.fixture
def verifier(tmp_path: Path) -> Iterator[Verifier]:
    fleet, gpu = Fleet.create(), make_gpu()
    root_file = tmp_path / "root.pem"
    root_file.write_bytes(gpu.root.public_bytes(serialization.Encoding.PEM))
    port = free_port()
    config = default_config(data_dir=tmp_path / "v", port=port, tick_s=3600.0,
                            ca_public_key_b64=fleet.ca_b64, nvidia_root_cert_file=root_file,
                            gpu_attestation_challenge_ttl_s=30.0)
    (tmp_path / "v").mkdir()
    store = SqliteStore(config.db_path)
    _, admin = issue_token(store, role="admin", label="ops", landmark_id=None,
                           now_unix_ns=time.time_ns())
    store.close()
    app = create_app(config)
    with serve_verifier(app, port) as url:
        v = Verifier(url, admin, fleet, gpu, tmp_path)
        with v.client() as client:
            body = fleet.chip_body("gpu-1", {"allowed": ["DEU"]})
            assert client.post("/v1/chips", json=body).status_code == 200
        v.app = app  # type: ignore[attr-defined]
        yield v


def _chip_key(v: Verifier) -> bytes:
    return v.fleet.chip_keys["gpu-1"].public_key()


def _alerts(client: httpx.Client, type_: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = client.get("/v1/alerts", params={"type": type_}).json()["items"]
    return items


def test_attest_enrols_the_gpu_then_reattests_it(verifier: Verifier) -> None:
    nvml = FakeNvml(verifier.gpu)
    with verifier.client() as client:
        first = attest_chip(client, "gpu-1", _chip_key(verifier), 0, nvml)  # type: ignore[arg-type]
        assert first["gpu_id"] == verifier.gpu.gpu_id
        assert first["key_protection"] == "software"  # attestation does not make a key hardware
        second = attest_chip(client, "gpu-1", _chip_key(verifier), 0, nvml)  # type: ignore[arg-type]
        assert second["enrolled_unix_ns"] == first["enrolled_unix_ns"]
        assert second["last_attested_unix_ns"] > first["last_attested_unix_ns"]
        status = client.get("/v1/chips/gpu-1/attestation").json()
        assert status == second
        assert client.get("/v1/chips/gpu-1").json()["key_protection"] == "software"
    assert nvml.initialised == 0 and len(nvml.nonces) == 2 and nvml.nonces[0] != nvml.nonces[1]


def test_attest_from_a_different_gpu_is_refused_and_raises_an_alert(verifier: Verifier) -> None:
    with verifier.client() as client:
        attest_chip(client, "gpu-1", _chip_key(verifier), 0,
                    FakeNvml(verifier.gpu))  # type: ignore[arg-type]
        swapped = verifier.gpu.sibling("0000BEEF")  # same vendor root, another GPU
        with pytest.raises(GpuAttestationUnavailableError, match="enrolled with GPU"):
            attest_chip(client, "gpu-1", _chip_key(verifier), 0,
                        FakeNvml(swapped))  # type: ignore[arg-type]
        (alert,) = _alerts(client, "gpu_attestation_failed")
        assert alert["subject_id"] == "gpu-1" and "0000BEEF" in alert["message"]
        assert client.get("/v1/chips/gpu-1/attestation").json()["gpu_id"] == verifier.gpu.gpu_id
        # The right GPU attesting again clears the alert.
        attest_chip(client, "gpu-1", _chip_key(verifier), 0,
                    FakeNvml(verifier.gpu))  # type: ignore[arg-type]
        assert _alerts(client, "gpu_attestation_failed")[0]["status"] == "resolved"


def test_attest_refuses_a_chain_to_another_root_before_enrolment(verifier: Verifier) -> None:
    with verifier.client() as client:
        with pytest.raises(GpuAttestationUnavailableError, match="pinned NVIDIA root"):
            attest_chip(client, "gpu-1", _chip_key(verifier), 0,
                        FakeNvml(make_gpu()))  # type: ignore[arg-type]
        assert client.get("/v1/chips/gpu-1/attestation").status_code == 404
        assert _alerts(client, "gpu_attestation_failed") == []  # nothing enrolled, nothing lost


def test_attest_refuses_a_replayed_or_foreign_nonce(verifier: Verifier) -> None:
    with verifier.client() as client:
        nonce_b64 = client.post("/v1/chips/gpu-1/attestation/challenge").json()["nonce_b64"]
        nonce = attestation_nonce(base64.b64decode(nonce_b64), _chip_key(verifier))
        body = {"nonce_b64": nonce_b64,
                "report_b64": base64.b64encode(verifier.gpu.report(nonce)).decode(),
                "cert_chain_pem": verifier.gpu.chain_pem().decode()}
        assert client.post("/v1/chips/gpu-1/attestation", json=body).status_code == 200
        replay = client.post("/v1/chips/gpu-1/attestation", json=body)
        assert replay.status_code == 422 and "no outstanding attestation challenge" in replay.text
        # A fresh challenge, but a report made for another chip key: the nonce does not match.
        nonce_b64 = client.post("/v1/chips/gpu-1/attestation/challenge").json()["nonce_b64"]
        other = attestation_nonce(base64.b64decode(nonce_b64), bytes(32))
        r = client.post("/v1/chips/gpu-1/attestation", json=body | {
            "nonce_b64": nonce_b64,
            "report_b64": base64.b64encode(verifier.gpu.report(other)).decode()})
        assert r.status_code == 422 and "answers another nonce" in r.text
        assert client.post("/v1/chips/nope/attestation/challenge").status_code == 404


def test_attest_refuses_a_stale_challenge(verifier: Verifier) -> None:
    with verifier.client() as client:
        nonce_b64 = client.post("/v1/chips/gpu-1/attestation/challenge").json()["nonce_b64"]
        store = SqliteStore(verifier.data_dir / "v" / "verifier.sqlite3")
        try:  # the challenge's expiry, moved into the past
            store.put_kv("gpu_challenge:gpu-1",
                         json.dumps({"nonce_b64": nonce_b64, "expires_unix_ns": 1}))
        finally:
            store.close()
        nonce = attestation_nonce(base64.b64decode(nonce_b64), _chip_key(verifier))
        r = client.post("/v1/chips/gpu-1/attestation", json={
            "nonce_b64": nonce_b64,
            "report_b64": base64.b64encode(verifier.gpu.report(nonce)).decode(),
            "cert_chain_pem": verifier.gpu.chain_pem().decode()})
        assert r.status_code == 422 and "expired" in r.text and "not fresh" in r.text


def test_attest_overdue_gpu_raises_an_alert(verifier: Verifier) -> None:
    with verifier.client() as client:
        attest_chip(client, "gpu-1", _chip_key(verifier), 0,
                    FakeNvml(verifier.gpu))  # type: ignore[arg-type]
    service = verifier.app.state.service  # type: ignore[attr-defined]
    later = time.time_ns() + 2 * 86_400 * 1_000_000_000
    store = SqliteStore(verifier.data_dir / "v" / "verifier.sqlite3")
    try:
        attestation.raise_overdue(store, service.alerts, max_age_s=86_400.0, now_unix_ns=later)
    finally:
        store.close()
    with verifier.client() as client:
        (alert,) = _alerts(client, "gpu_attestation_overdue")
        assert alert["subject_id"] == "gpu-1" and "not re-attested" in alert["message"]


def test_attest_without_confidential_computing_says_what_nvml_said() -> None:
    nvml = FakeNvml(None, error="NVML_ERROR_NOT_SUPPORTED: Not Supported")
    with pytest.raises(GpuAttestationUnavailableError, match="Not Supported"):
        read_gpu_evidence(0, bytes(32), nvml)  # type: ignore[arg-type]
    assert nvml.initialised == 0  # NVML shut down again


def test_agent_attest_cli_once(verifier: Verifier, tmp_path: Path,
                               monkeypatch: pytest.MonkeyPatch,
                               capsys: pytest.CaptureFixture[str]) -> None:
    key_dir = tmp_path / "keys"
    key_dir.mkdir()
    chip = generate_key_file(key_dir / "gpu-2.key")
    verifier.fleet.chip_keys["gpu-2"] = chip
    with verifier.client() as client:
        assert client.post("/v1/chips", json=verifier.fleet.chip_body(
            "gpu-2", {"allowed": ["DEU"]})).status_code == 200
    token = tmp_path / "token"
    fd = os.open(token, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.write(fd, verifier.admin.encode() + b"\n")
    os.close(fd)
    import device_agent.gpu_attestation as agent_attestation

    monkeypatch.setattr(agent_attestation, "_pynvml", lambda: FakeNvml(verifier.gpu))
    argv = ["agent", "attest", "--verifier", verifier.url, "--token-file", str(token),
            "--chip-id", "gpu-2", "--key-dir", str(key_dir)]
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGINT)}
    assert main(argv) == 0
    # Run in-process, the CLI leaves no signal handler behind (a forked child of this process
    # would otherwise ignore the SIGTERM that multiprocessing sends to end it).
    assert {signum: signal.getsignal(signum) for signum in handlers} == handlers
    assert f"GPU {verifier.gpu.gpu_id} attested" in capsys.readouterr().out
    monkeypatch.setattr(agent_attestation, "_pynvml", lambda: FakeNvml(make_gpu()))
    assert main(argv) == 1
    assert "pinned NVIDIA root" in capsys.readouterr().err


def test_attestation_timing_benchmark_reports_figures_and_nvml_errors(
        capsys: pytest.CaptureFixture[str]) -> None:
    from benchmarks.gpu_attestation import main as bench

    assert bench(["--calls", "5"], FakeNvml(make_gpu())) == 0  # type: ignore[arg-type]
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] and result["calls"] == 5 and result["driver_version"] == "550.90.07"
    assert 0 <= result["min_ms"] <= result["median_ms"] <= result["p99_ms"] <= result["max_ms"]
    failing = FakeNvml(make_gpu(), error="NVML_ERROR_NOT_SUPPORTED")
    assert bench(["--calls", "5"], failing) == 1  # type: ignore[arg-type]
    result = json.loads(capsys.readouterr().out)
    assert not result["ok"] and "NVML_ERROR_NOT_SUPPORTED" in result["error"]
