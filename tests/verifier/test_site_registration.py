"""Declaring a chip's site and resetting its learned RTT baseline: over the HTTP API (both
backends) and with `lightfence verifier chips` against a real verifier on loopback. Every
refused input says why and changes nothing."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from lightfence.cli import main
from tests.served_verifier import serve_verifier
from tests.verifier.conftest import Harness, make_config
from tests.verifier.fleet import Fleet
from verifier.app import create_app
from verifier.auth import issue_token
from verifier.model import RttBaseline
from verifier.store import SqliteStore, Store

LICENCE = {"allowed": ["MYS"], "prohibited": [], "tolerance_km": 5.0}
CYBERJAYA = {"lat_deg": 2.92, "lon_deg": 101.65}


def _rows(chip_id: str) -> list[RttBaseline]:
    return [RttBaseline(chip_id, "lm-kl", 3.139, 101.687, 1.5, 20, 1, 2),
            RttBaseline(chip_id, "lm-sg", 1.352, 103.82, 7.0, 20, 1, 2)]


async def _licence(h: Harness, chip_id: str) -> dict[str, Any]:
    r = await h.client.get(f"/v1/chips/{chip_id}", headers=h.dashboard)
    assert r.status_code == 200, r.text
    return dict(r.json()["licence"])


@pytest.mark.asyncio
async def test_a_site_is_declared_cleared_and_resets_the_baseline(harness: Harness) -> None:
    h = harness
    assert (await h.post("/v1/chips", h.fleet.chip_body("chip-1", LICENCE))).status_code == 200
    await h.service.db.run(Store.put_rtt_baselines, _rows("chip-1"))
    r = await h.client.get("/v1/chips/chip-1/rtt-baseline", headers=h.dashboard)
    assert r.status_code == 200 and [i["landmark_id"] for i in r.json()["items"]] == [
        "lm-kl", "lm-sg"]
    assert r.json()["baseline_rounds"] == 12
    r = await h.client.put("/v1/chips/chip-1/site", headers=h.admin, json=CYBERJAYA)
    assert r.status_code == 200, r.text
    assert r.json()["baseline_rows_reset"] == 2
    assert r.json()["chip"]["licence"]["site"] == CYBERJAYA
    licence = await _licence(h, "chip-1")
    assert licence["site"] == CYBERJAYA and licence["allowed"] == ["MYS"]
    assert licence["tolerance_km"] == 5.0  # the rest of the licence is kept
    assert await h.service.db.run(Store.rtt_baselines, "chip-1") == []
    # Clearing the site keeps what was learned since (no move was declared).
    await h.service.db.run(Store.put_rtt_baselines, _rows("chip-1"))
    r = await h.client.delete("/v1/chips/chip-1/site", headers=h.admin)
    assert r.status_code == 200 and r.json()["baseline_rows_reset"] == 0
    assert "site" not in await _licence(h, "chip-1")
    r = await h.client.delete("/v1/chips/chip-1/rtt-baseline", headers=h.admin)
    assert r.status_code == 200 and r.json() == {"chip_id": "chip-1", "baseline_rows_reset": 2}
    assert await h.service.db.run(Store.rtt_baselines, "chip-1") == []


@pytest.mark.asyncio
async def test_refused_site_inputs_say_why_and_change_nothing(harness: Harness) -> None:
    h = harness
    body = h.fleet.chip_body("chip-1", {**LICENCE, "site": CYBERJAYA})
    assert (await h.post("/v1/chips", body)).status_code == 200
    await h.service.db.run(Store.put_rtt_baselines, _rows("chip-1"))
    viewer = await h.token("viewer")
    cases: list[tuple[str, object, dict[str, str], int, str]] = [
        ("/v1/chips/chip-1/site", {"lat_deg": 91.0, "lon_deg": 0.0}, h.admin, 422, "lat_deg"),
        ("/v1/chips/chip-1/site", {"lat_deg": 0.0, "lon_deg": -180.5}, h.admin, 422, "lon_deg"),
        ("/v1/chips/chip-1/site", {"lat_deg": 0.0}, h.admin, 422, "lon_deg"),
        ("/v1/chips/chip-1/site", {"lat_deg": "north", "lon_deg": 0.0}, h.admin, 422, "lat_deg"),
        ("/v1/chips/chip-1/site", {**CYBERJAYA, "alt_m": 3.0}, h.admin, 422, "alt_m"),
        ("/v1/chips/chip-1/site", CYBERJAYA, viewer, 403, "needs admin"),
        ("/v1/chips/chip-1/site", CYBERJAYA, {}, 401, ""),
        ("/v1/chips/nope/site", CYBERJAYA, h.admin, 404, "no chip nope"),
        ("/v1/chips/bad%20id/site", CYBERJAYA, h.admin, 422, "chip_id"),
    ]
    for path, sent, headers, status, words in cases:
        r = await h.client.put(path, headers=headers, json=sent)
        assert r.status_code == status, (path, sent, r.text)
        assert words in r.text, r.text
    r = await h.client.put("/v1/chips/chip-1/site", headers={**h.admin, "content-type":
                           "application/json"}, content=b'{"lat_deg": NaN, "lon_deg": 0}')
    assert r.status_code == 422 and "lat_deg" in r.text and '"nan"' in r.text
    for path in ("/v1/chips/chip-1/site", "/v1/chips/chip-1/rtt-baseline"):
        assert (await h.client.delete(path, headers=viewer)).status_code == 403
    assert (await h.client.delete("/v1/chips/nope/rtt-baseline",
                                  headers=h.admin)).status_code == 404
    assert (await _licence(h, "chip-1"))["site"] == CYBERJAYA
    assert await h.service.db.run(Store.rtt_baselines, "chip-1") == _rows("chip-1")


# ---- the CLI against a real verifier on loopback ---------------------------------------------


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[str, Path, Path, Path]]:
    """(url, admin token file, viewer token file, data dir) of a verifier with chip-1."""
    fleet = Fleet.create()
    port = _free_port()
    config = make_config(tmp_path, fleet, port=port)
    store = SqliteStore(config.db_path)
    now = time.time_ns()
    tokens = {}
    for role in ("admin", "viewer"):
        _, secret = issue_token(store, role=role, label=role, landmark_id=None, now_unix_ns=now)
        tokens[role] = tmp_path / f"{role}.token"
        tokens[role].write_text(secret + "\n")
    store.close()
    with serve_verifier(create_app(config), port) as url:
        admin = {"Authorization": f"Bearer {tokens['admin'].read_text().strip()}"}
        r = httpx.post(f"{url}/v1/chips", json=fleet.chip_body("chip-1", LICENCE), headers=admin)
        assert r.status_code == 200, r.text
        yield url, tokens["admin"], tokens["viewer"], tmp_path


def _chip_licence(url: str, token_file: Path) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token_file.read_text().strip()}"}
    return dict(httpx.get(f"{url}/v1/chips/chip-1", headers=headers).json()["licence"])


def test_the_cli_declares_a_site_through_the_api(served, capsys) -> None:
    url, admin, viewer, _ = served
    argv = ["verifier", "chips", "set-site", "chip-1", "--lat-deg", "2.92", "--lon-deg",
            "101.65", "--url", url, "--token-file", str(admin)]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["chip"]["licence"]["site"] == CYBERJAYA
    assert _chip_licence(url, admin)["site"] == CYBERJAYA
    assert main(["verifier", "chips", "baseline", "chip-1", "--url", url,
                 "--token-file", str(viewer)]) == 0
    assert json.loads(capsys.readouterr().out)["items"] == []
    assert main(["verifier", "chips", "reset-baseline", "chip-1", "--url", url,
                 "--token-file", str(admin)]) == 0
    assert json.loads(capsys.readouterr().out)["baseline_rows_reset"] == 0
    assert main(["verifier", "chips", "clear-site", "chip-1", "--url", url,
                 "--token-file", str(admin)]) == 0
    assert "site" not in _chip_licence(url, admin)


def test_the_cli_reports_each_refusal_and_changes_nothing(served, capsys,
                                                          monkeypatch) -> None:
    url, admin, viewer, tmp_path = served
    assert main(["verifier", "chips", "set-site", "chip-1", "--lat-deg", "2.92", "--lon-deg",
                 "101.65", "--url", url, "--token-file", str(admin)]) == 0
    capsys.readouterr()
    site = ["--url", url, "--token-file", str(admin)]
    monkeypatch.delenv("LIGHTFENCE_TOKEN", raising=False)
    cases = [
        (["chip-1", "--lat-deg", "95", "--lon-deg", "0", *site], "422: lat_deg: Input should be"),
        (["chip-1", "--lat-deg", "0", "--lon-deg", "200", *site], "422: lon_deg"),
        (["chip-1", "--lat-deg", "nan", "--lon-deg", "0", *site], "422: lat_deg"),
        (["nope", "--lat-deg", "0", "--lon-deg", "0", *site], "404: no chip nope"),
        (["chip-1", "--lat-deg", "0", "--lon-deg", "0", "--url", url, "--token-file",
          str(viewer)], "403: role viewer may not do this"),
        (["chip-1", "--lat-deg", "0", "--lon-deg", "0", "--url", url],
         "no token: pass --token-file or set LIGHTFENCE_TOKEN"),
        (["chip-1", "--lat-deg", "0", "--lon-deg", "0", "--url", url, "--token-file",
          str(tmp_path / "missing.token")], "cannot read the token file"),
        (["chip-1", "--lat-deg", "0", "--lon-deg", "0", "--url", "ftp://x",
          "--token-file", str(admin)], "--url must be http:// or https://"),
        (["chip-1", "--lat-deg", "0", "--lon-deg", "0", "--url",
          f"http://127.0.0.1:{_free_port()}", "--token-file", str(admin)],
         "cannot reach the verifier"),
    ]
    for args, words in cases:
        assert main(["verifier", "chips", "set-site", *args]) == 2, args
        err = capsys.readouterr().err
        assert err.startswith("error: ") and words in err, (args, err)
    with pytest.raises(SystemExit):  # argparse: not a number
        main(["verifier", "chips", "set-site", "chip-1", "--lat-deg", "north", "--lon-deg", "0",
              *site])
    assert _chip_licence(url, admin)["site"] == CYBERJAYA
