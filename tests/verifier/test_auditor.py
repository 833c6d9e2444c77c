"""The auditor walkthrough of docs/operations.md, end to end: an admin issues an auditor
token; the auditor reads the fleet, downloads the log key and a chip's evidence bundle over the
API and verifies it offline with `lightfence audit verify`; every change is refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from lightfence.cli import main
from tests.verifier.conftest import open_harness
from tests.verifier.test_flow import KASSEL, run_round, setup_germany


@pytest.mark.asyncio
async def test_auditor_exports_and_verifies_evidence_but_changes_nothing(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    async with open_harness(tmp_path / "verifier", tree_head_interval_s=3600.0) as h:
        created = await h.post("/v1/tokens", {"role": "auditor", "label": "audit-firm-2026"})
        assert created.status_code == 200, created.text
        auditor = {"Authorization": f"Bearer {created.json()['token']}"}
        await setup_germany(h)
        await run_round(h, "chip-1", KASSEL)
        assert h.service.tree_heads is not None
        h.service.tree_heads.sign_if_grown(int(time.time()))

        me = (await h.client.get("/v1/me", headers=auditor)).json()
        assert (me["role"], me["label"]) == ("auditor", "audit-firm-2026")
        for path in ("/v1/chips", "/v1/alerts", "/v1/chips/chip-1/verdicts", "/v1/zones",
                     "/v1/deliveries"):
            assert (await h.client.get(path, headers=auditor)).status_code == 200, path
        key = await h.client.get("/v1/log/public-key", headers=auditor)
        bundle = await h.client.get("/v1/chips/chip-1/evidence", headers=auditor)
        assert key.status_code == 200 and bundle.status_code == 200, bundle.text

        refused = [
            h.client.post("/v1/alerts/1/ack", json={"reason": "x"}, headers=auditor),
            h.client.post("/v1/mutes", json={"reason": "x", "chip_id": "chip-1",
                                             "expires_unix_ns": time.time_ns() + 10**12},
                          headers=auditor),
            h.client.put("/v1/channels/c", json={"kind": "slack", "settings": {
                "url": "https://x"}}, headers=auditor),
            h.client.post("/v1/tokens", json={"role": "admin", "label": "me"}, headers=auditor),
            h.client.put("/v1/chips/chip-1/licence", json={"licence": {"allowed": ["FRA"]}},
                         headers=auditor),
        ]
        for request in refused:
            assert (await request).status_code == 403
        chip = (await h.client.get("/v1/chips/chip-1", headers=auditor)).json()
        assert chip["licence"]["allowed"] == ["DEU"]  # unchanged

    # Offline, with keys pinned: the vendor CA (from the vendor) and the log key.
    (tmp_path / "log.pub.json").write_text(key.text, encoding="utf-8")
    (tmp_path / "ca.pub.json").write_text(json.dumps({"public_key_b64": h.fleet.ca_b64}),
                                          encoding="utf-8")
    (tmp_path / "bundle.json").write_text(bundle.text, encoding="utf-8")
    capsys.readouterr()
    code = main(["audit", "verify", str(tmp_path / "bundle.json"), "--ca",
                 str(tmp_path / "ca.pub.json"), "--log-key", str(tmp_path / "log.pub.json")])
    assert code == 0, capsys.readouterr()
