"""The demo's scenario, scaled down, end to end: real processes, UDP, signatures, HTTP, SQLite."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def _processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes that mention `text` (the demo's private directory)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if text in cmdline:
            found.append(cmdline)
    return found


def _demo(workdir: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "lightfence", "demo", "--small", "--keep", str(workdir), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True,
    )


def test_small_demo_catches_smuggling_darkness_faulty_landmark_and_replay(tmp_path: Path) -> None:
    workdir = tmp_path / "world"
    demo = _demo(workdir, "--duration", "40", "--json")
    stdout, stderr = demo.communicate(timeout=240)
    result = json.loads(stdout)
    checks = result["checks"]
    states = {chip["chip_id"]: chip["state"] for chip in result["chips"]}
    alerts = {(alert["subject_id"], alert["type"]) for alert in result["alerts"]}

    # The smuggled chip (licensed to Malaysia, really in Shenzhen behind a KL relay) is never
    # verified, and the chip whose agent stopped is dark with an alert.
    assert states["gpu-kul-03"] != "verified"
    assert states["gpu-fra-03"] == "dark"
    assert ("gpu-fra-03", "went_dark") in alerts
    # The landmark that claims Chicago from Paris is caught by the mesh audit.
    assert ("lm-chicago", "landmark_fault") in alerts
    # The replayed measurement was refused and alerted.
    assert result["stats"]["measurements_rejected_by_reason"].get("replay", 0) >= 1
    assert any(alert["type"] == "replay_detected" for alert in result["alerts"])
    # Honest chips are never accused.
    assert all(states[c] != "violation" for c in ("gpu-ash-01", "gpu-fra-01", "gpu-kul-01"))
    assert checks["smuggled_never_verified"] and checks["honest_never_violation"]
    assert demo.returncode == 0, stderr[-2000:]
    assert _processes_mentioning(str(workdir)) == []

    # Evidence: every chip's bundle over the whole run, exported with the real CLI from the
    # stopped verifier's data, passes the offline audit, which recomputes every stored verdict.
    import sqlite3

    data_dir = workdir / "var" / "verifier"
    db = sqlite3.connect(data_dir / "verifier.sqlite3")
    stored = dict(db.execute("SELECT chip_id, COUNT(*) FROM verdicts GROUP BY chip_id"))
    db.close()
    assert set(stored) >= {"gpu-kul-03", "gpu-fra-03", "gpu-ash-01"}
    for chip_id, verdict_count in sorted(stored.items()):
        bundle = tmp_path / f"{chip_id}.bundle.json"
        export = subprocess.run(
            [sys.executable, "-m", "lightfence", "evidence", "export", "--chip", chip_id,
             "--from", "0", "--to", str(2**63 - 1), "--data-dir", str(data_dir),
             "-o", str(bundle)], check=False, capture_output=True, text=True, timeout=120)
        assert export.returncode == 0, export.stderr[-2000:]
        assert json.loads(bundle.read_text())["omitted_uncovered"] == 0
        audit = subprocess.run(
            [sys.executable, "-m", "lightfence", "audit", "verify", str(bundle),
             "--ca", str(workdir / "keys" / "ca.pub.json"),
             "--log-key", str(data_dir / "log.pub.json")],
            check=False, capture_output=True, text=True, timeout=300)
        report = json.loads(audit.stdout)
        assert audit.returncode == 0, (chip_id, report["findings"][:5])
        assert report["counts"]["recomputed_verdicts"] == verdict_count, chip_id


def test_demo_stops_every_process_on_ctrl_c(tmp_path: Path) -> None:
    workdir = tmp_path / "world"
    demo = _demo(workdir, "--duration", "300")
    config = workdir / "etc" / "verifier.toml"
    deadline = time.monotonic() + 90
    up = False
    while time.monotonic() < deadline and not up:
        time.sleep(0.5)
        if config.exists():
            port = next(line.split("=")[1].strip() for line in config.read_text().splitlines()
                        if line.startswith("port"))
            try:
                up = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
            except httpx.HTTPError:
                up = False
    assert up, "the demo's verifier never came up"
    time.sleep(3)  # landmarks and agents are starting or running now
    assert _processes_mentioning(str(workdir)), "expected the demo's children to be running"
    demo.send_signal(signal.SIGINT)
    demo.communicate(timeout=60)
    assert demo.returncode == 130
    assert _processes_mentioning(str(workdir)) == []
