"""The verifier's evidence log key, its periodic tree heads and the evidence API, end to end:
real verifier app, real signed rounds, the real export CLI and the offline audit."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from audit.verify import verify_bundle
from keystore.cert_files import read_ca_public_key
from lightfence.cli import main
from tests.verifier.conftest import Harness, open_harness
from tests.verifier.fleet import Fleet
from tests.verifier.test_flow import GERMANY, KASSEL, TOKYO, rtt_from, setup_germany
from verifier.app import create_app
from verifier.errors import ConfigError
from verifier.evidence import append_evidence, build_alert_evidence
from verifier.translog import TransparencyLog
from verifier.tree_heads import load_or_create_log_key, public_key_path


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_is_created_0600_once_and_its_public_half_published(tmp_path: Path) -> None:
    key_path = tmp_path / "keys" / "log.key"
    signer = load_or_create_log_key(key_path)
    assert _mode(key_path) == 0o600
    assert read_ca_public_key(public_key_path(key_path)) == signer.public_key()
    seed_file = key_path.read_bytes()
    again = load_or_create_log_key(key_path)  # a restart keeps the same key
    assert again.public_key() == signer.public_key()
    assert key_path.read_bytes() == seed_file


def test_key_readable_by_others_is_refused_and_left_untouched(tmp_path: Path) -> None:
    fleet = Fleet.create()
    key_path = tmp_path / "log.key"
    load_or_create_log_key(key_path)
    before = key_path.read_bytes()
    os.chmod(key_path, 0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_or_create_log_key(key_path)
    from tests.verifier.conftest import make_config

    with pytest.raises(ConfigError, match="accessible by group or others"):
        create_app(make_config(tmp_path, fleet, log_key_file=key_path))
    assert key_path.read_bytes() == before
    assert _mode(key_path) == 0o644  # the verifier never "fixes" a key it may not trust


async def _setup(h: Harness) -> None:
    """Germany's landmarks and chip-1, with rounds allowed back to back."""
    r = await h.client.put("/v1/policies/default", headers=h.admin, json={
        "round_interval_s": 0.01, "landmarks_per_round": 4, "round_timeout_s": 30.0,
        "dark_window_s": 3600.0})
    assert r.status_code == 200, r.text
    await setup_germany(h)


async def run_round(h: Harness, chip_id: str, position: tuple[float, float]) -> None:
    """Plan, answer every task with a signed record, close the round. Like a real landmark,
    each record is stamped when its REVEAL left, one RTT before the answer came back."""
    await h.service.tick(time.time_ns())
    for landmark_id, where in GERMANY.items():
        headers = await h.token("landmark", landmark_id)
        r = await h.client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0", headers=headers)
        if not any(t["target_id"] == chip_id for t in r.json()["tasks"]):
            continue
        rtt_ms = rtt_from(where, position)
        sent = time.time_ns() - int(rtt_ms * 1e6) - 1_000_000
        record = h.fleet.record(landmark_id, chip_id, rtt_ms, sent_unix_ns=sent)
        r = await h.post("/v1/measurements", h.fleet.batch(landmark_id, [record]).to_json(),
                         headers)
        assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    await h.service.tick(time.time_ns())


async def _wait_for_head(log: TransparencyLog, size: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        head = log.latest_tree_head()
        if head is not None and head.tree_size >= size:
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"no tree head covering {size} entries within {timeout_s} s")


@pytest.mark.asyncio
async def test_heads_are_signed_periodically_when_the_log_grew(tmp_path: Path) -> None:
    async with open_harness(tmp_path, tree_head_interval_s=0.05) as h:
        log = h.service.evidence.log
        assert log is not None
        published = read_ca_public_key(tmp_path / "log.pub.json")
        await _setup(h)
        await run_round(h, "chip-1", KASSEL)
        grown = log.size
        assert grown >= 1
        await _wait_for_head(log, grown)
        heads = log.tree_heads()
        for head in heads:
            head.verify(published)  # signed by the published key
        assert heads[-1].root == log.root(heads[-1].tree_size)
        await asyncio.sleep(0.3)  # six intervals with nothing new: no new head
        assert len(log.tree_heads()) == len(heads)
        await run_round(h, "chip-1", TOKYO)
        await _wait_for_head(log, log.size)
        assert len(log.tree_heads()) == len(heads) + 1


@pytest.mark.asyncio
async def test_shutdown_signs_a_last_head_so_a_plain_export_covers_everything(
    tmp_path: Path, capsys: Any
) -> None:
    async with open_harness(tmp_path, tree_head_interval_s=3600.0) as h:
        await _setup(h)
        await run_round(h, "chip-1", KASSEL)
        ca = h.fleet.ca.public_key()
    out = tmp_path / "bundle.json"
    code = main(["evidence", "export", "--chip", "chip-1", "--from", "0", "--to",
                 str(2**63 - 1), "--data-dir", str(tmp_path), "-o", str(out)])
    assert code == 0, capsys.readouterr().err
    bundle = json.loads(out.read_text())
    assert bundle["omitted_uncovered"] == 0 and bundle["entries"]
    report = verify_bundle(bundle, ca_public_key=ca,
                           log_public_key=read_ca_public_key(tmp_path / "log.pub.json"))
    assert report.ok, report.findings
    assert report.counts["recomputed_verdicts"] == report.counts["verdicts"] == 1


async def _get(h: Harness, path: str, headers: dict[str, str] | None = None) -> Any:
    return await h.client.get(path, headers=h.dashboard if headers is None else headers)


@pytest.mark.asyncio
async def test_evidence_api(tmp_path: Path, capsys: Any) -> None:
    async with open_harness(tmp_path, tree_head_interval_s=3600.0) as h:
        key = await _get(h, "/v1/log/public-key")
        assert key.status_code == 200
        assert key.json() == json.loads((tmp_path / "log.pub.json").read_text())
        landmark = await h.token("landmark", "FRA")
        assert (await _get(h, "/v1/log/public-key", landmark)).status_code == 403
        await _setup(h)
        await run_round(h, "chip-1", KASSEL)
        await run_round(h, "chip-1", TOKYO)
        url = "/v1/chips/chip-1/evidence"
        # Entries exist but no head is signed yet: nothing can be proven.
        early = await _get(h, url)
        assert early.status_code == 409 and "no signed tree head" in early.json()["detail"]
        assert (await _get(h, "/v1/chips/nope/evidence")).status_code == 404
        assert (await _get(h, f"{url}?from_unix_ns=5&to_unix_ns=4")).status_code == 422
        assert (await _get(h, f"{url}?from_unix_ns=-1")).status_code == 422
        assert (await _get(h, url, landmark)).status_code == 403
        assert (await h.client.get(url)).status_code == 401
        assert h.service.tree_heads is not None
        h.service.tree_heads.sign_if_grown(int(time.time()))
        response = await _get(h, url, h.admin)
        assert response.status_code == 200, response.text
        bundle = response.json()
        verdicts = (await _get(h, "/v1/chips/chip-1/verdicts")).json()["items"]
        # The API serves exactly what the export CLI writes.
        out = tmp_path / "cli.json"
        assert main(["evidence", "export", "--chip", "chip-1", "--from", "0", "--to",
                     str(2**63 - 1), "--data-dir", str(tmp_path), "-o", str(out)]) == 0
        assert json.loads(out.read_text()) == bundle
        capsys.readouterr()
        # A later round not yet under a signed head: the range holding only it is refused.
        await run_round(h, "chip-1", KASSEL)
        latest = (await _get(h, "/v1/chips/chip-1/verdicts")).json()["items"][0]
        only_new = await _get(h, f"{url}?from_unix_ns={latest['created_unix_ns']}")
        assert only_new.status_code == 409, only_new.text
        assert "newer than the latest signed tree head" in only_new.json()["detail"]
        openapi = (await h.client.get("/openapi.json")).json()
        assert {"/v1/log/public-key", "/v1/chips/{chip_id}/evidence"} <= set(openapi["paths"])
    report = verify_bundle(bundle, ca_public_key=h.fleet.ca.public_key(),
                           log_public_key=read_ca_public_key(tmp_path / "log.pub.json"))
    assert report.ok, report.findings
    assert report.counts["recomputed_verdicts"] == len(verdicts) == 2


@pytest.mark.asyncio
async def test_dark_verdict_is_recomputed_and_a_forged_one_named(tmp_path: Path) -> None:
    async with open_harness(tmp_path, tree_head_interval_s=3600.0) as h:
        r = await h.client.put("/v1/policies/fast", headers=h.admin, json={
            "round_interval_s": 0.01, "landmarks_per_round": 4, "round_timeout_s": 0.01,
            "dark_window_s": 0.01})
        assert r.status_code == 200, r.text
        await setup_germany(h)
        body = h.fleet.chip_body("chip-2", {"allowed": ["DEU"]}, policy="fast")
        assert (await h.post("/v1/chips", body)).status_code == 200
        await h.service.tick(time.time_ns())
        await asyncio.sleep(0.05)  # the round times out unanswered, past the dark window
        await h.service.tick(time.time_ns())
        chip = (await _get(h, "/v1/chips/chip-2")).json()
        assert chip["state"] == "dark"
    out = tmp_path / "dark.json"
    assert main(["evidence", "export", "--chip", "chip-2", "--from", "0", "--to",
                 str(2**63 - 1), "--data-dir", str(tmp_path), "-o", str(out)]) == 0
    bundle = json.loads(out.read_text())
    keys: dict[str, Any] = {"ca_public_key": h.fleet.ca.public_key(),
            "log_public_key": read_ca_public_key(tmp_path / "log.pub.json")}
    report = verify_bundle(bundle, **keys)
    assert report.ok, report.findings
    assert report.counts["recomputed_verdicts"] == report.counts["verdicts"] >= 1
    dark = next(e for e in bundle["entries"] if e["kind"] == "verdict")
    dark["entry"]["verdict"] = "verified"  # claim the silent chip was verified
    findings = {(f.check, f.where, f.expected, f.found)
                for f in verify_bundle(bundle, **keys).findings}
    k = bundle["entries"].index(dark)
    assert ("verdict.recomputed", f"entries[{k}].entry.verdict", "dark or inconclusive",
            "verified") in findings


def test_export_before_any_signed_head_says_how_to_get_one(tmp_path: Path, capsys: Any) -> None:
    with TransparencyLog(tmp_path / "verifier.sqlite3") as log:
        alert = {"alert_id": 1, "type": "went_dark", "subject_id": "chip-1"}
        append_evidence(log, build_alert_evidence(alert, chip_id="chip-1", time_unix_ns=1))
    out = tmp_path / "bundle.json"
    argv = ["evidence", "export", "--chip", "chip-1", "--from", "0", "--to", "10",
            "--data-dir", str(tmp_path), "-o", str(out)]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "no signed tree head" in err and "--sign-with" in err
    assert not out.exists()
    key = load_or_create_log_key(tmp_path / "log.key")
    assert main([*argv, "--sign-with", str(tmp_path / "log.key")]) == 0
    assert json.loads(out.read_text())["log_public_key_b64"] == json.loads(
        (tmp_path / "log.pub.json").read_text())["public_key_b64"]
    assert key.public_key() == read_ca_public_key(tmp_path / "log.pub.json")
