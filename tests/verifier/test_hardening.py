"""The verifier-side smaller items of issue 12: batch-id de-duplication after the signature and
per landmark, webhooks until a 2xx and no empty secret, private TOML for secrets, /metrics
access control, and the scheduler's anchor reading the estimate the assessment really has."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.verifier.conftest import Harness, open_harness
from tests.verifier.test_flow import GERMANY, KASSEL, rtt_from, setup_germany
from verifier.config import WebhookConfig, default_config, load_config
from verifier.errors import ConfigError
from verifier.model import AlertType
from verifier.scheduler import _anchor
from verifier.store import SqliteStore, Store
from verifier.webhooks import gives_up

_NS = 1_000_000_000


@pytest.mark.asyncio
async def test_batch_id_is_deduplicated_after_the_signature_and_per_landmark(
        harness: Harness) -> None:
    h = harness
    await setup_germany(h)
    await h.service.tick(time.time_ns())
    fra, ber = await h.token("landmark", "FRA"), await h.token("landmark", "BER")
    for landmark_id, headers in (("FRA", fra), ("BER", ber)):
        await h.client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0", headers=headers)
    record = h.fleet.record("FRA", "chip-1", rtt_from(GERMANY["FRA"], KASSEL))
    batch = h.fleet.batch("FRA", [record], batch_id="b-fra-1")
    first = await h.post("/v1/measurements", batch.to_json(), fra)
    assert first.status_code == 200 and first.json()["accepted"] == 1
    # BER, with its own token and key, asks under FRA's batch id: no FRA result comes back.
    theirs = h.fleet.batch("BER", [], batch_id="b-fra-1")
    r = await h.post("/v1/measurements", theirs.to_json(), ber)
    assert r.status_code == 409 and "accepted" not in r.text, r.text
    # An unsigned claim to be FRA's batch (any uploader token) is refused at the signature.
    forged = batch.to_json()
    forged["signature_b64"] = h.fleet.batch("BER", []).to_json()["signature_b64"]
    r = await h.post("/v1/measurements", forged)
    assert r.status_code == 422 and "signature" in r.text
    again = await h.post("/v1/measurements", batch.to_json(), fra)  # FRA's own retry
    assert again.json() == {**first.json(), "duplicate": True}
    # BER's own batch with a fresh id still goes in.
    own = h.fleet.record("BER", "chip-1", rtt_from(GERMANY["BER"], KASSEL))
    r = await h.post("/v1/measurements", h.fleet.batch("BER", [own]).to_json(), ber)
    assert r.status_code == 200 and r.json()["accepted"] == 1


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port  # nothing listens: every attempt is refused at once


@pytest.mark.asyncio
async def test_webhooks_retry_until_a_2xx_past_the_old_attempt_limit(tmp_path: Path) -> None:
    url = f"http://127.0.0.1:{_closed_port()}/hook"
    async with open_harness(tmp_path, webhooks=(WebhookConfig(url, "s3cret-for-tests"),)) as h:
        h.service.webhooks._alerts = None  # delivery log off: only the outbox row matters here
        await h.service.db.run(lambda s: h.service.alerts.raise_alert(
            s, AlertType.WENT_DARK, subject_kind="chip", subject_id="c1", message="m", details={},
            now_unix_ns=time.time_ns()))
        now = time.time_ns()
        for attempt in range(1, 16):  # the old default gave up after 12
            later = now + attempt * 3_601 * _NS  # past the (capped) backoff each time
            assert len(await h.service.db.run(Store.due_outbox, later, 10)) == 1, attempt
            assert await h.service.webhooks.deliver_due(later) == 0
        assert len(await h.service.db.run(Store.due_outbox, now + 99 * 3_601 * _NS, 10)) == 1
    assert not gives_up(10**6, default_config())
    assert gives_up(3, default_config(webhook_max_attempts=3))
    assert not gives_up(2, default_config(webhook_max_attempts=3))


def test_empty_webhook_secret_is_refused(tmp_path: Path) -> None:
    for secret in ("", "   "):
        with pytest.raises(ConfigError, match="secret must not be empty"):
            default_config(webhooks=(WebhookConfig("http://127.0.0.1:9/h", secret),))
    config = tmp_path / "v.toml"
    config.write_text('[verifier]\nwebhooks = [{url = "http://127.0.0.1:9/h", secret = ""}]\n',
                      encoding="utf-8")
    config.chmod(0o600)
    with pytest.raises(ConfigError, match="secret must not be empty"):
        load_config(config)
    with pytest.raises(ConfigError, match="webhook_max_attempts"):
        default_config(webhook_max_attempts=-1)


def test_a_config_holding_secrets_must_be_private(tmp_path: Path) -> None:
    config = tmp_path / "v.toml"
    config.write_text('[verifier]\nwebhooks = [{url = "http://127.0.0.1:9/h",'
                      ' secret = "s3cret-for-tests"}]\n', encoding="utf-8")
    config.chmod(0o644)
    with pytest.raises(ConfigError, match=r"readable by group or others .*chmod 600"):
        load_config(config)
    config.chmod(0o640)
    with pytest.raises(ConfigError, match="mode 640"):
        load_config(config)
    config.chmod(0o600)
    assert load_config(config).webhooks[0].secret == "s3cret-for-tests"
    plain = tmp_path / "plain.toml"  # no secrets in it: any mode is fine
    plain.write_text("[verifier]\nport = 8081\n", encoding="utf-8")
    plain.chmod(0o644)
    assert load_config(plain).port == 8081


@pytest.mark.asyncio
async def test_metrics_can_require_a_reader_token(tmp_path: Path) -> None:
    async with open_harness(tmp_path / "open") as h:
        assert (await h.client.get("/metrics")).status_code == 200  # the default: open
    async with open_harness(tmp_path / "closed", metrics_public=False) as h:
        r = await h.client.get("/metrics")
        assert r.status_code == 401 and "lightfence_" not in r.text
        lm = await h.client.get("/metrics", headers=await h.token("landmark", "FRA"))
        assert lm.status_code == 403
        r = await h.client.get("/metrics", headers=h.dashboard)
        assert r.status_code == 200 and "lightfence_verdicts_total" in r.text


def test_anchor_is_the_last_estimate_the_assessment_holds(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "v.sqlite3")
    try:
        from verifier.model import Chip, Landmark

        chip = Chip("c1", "o", "m", "s", None, None, "default", b"\0" * 32, {},
                    {"allowed": ["JPN"]}, "unknown", 0, None, 0, 0)
        landmark = Landmark("FRA", 50.11, 8.68, "127.0.0.1", 7000, b"\0" * 32, {}, None, False,
                            None, 0)
        assert abs(_anchor(store, chip, [landmark])[1] - 138) < 10  # the licence: Japan
        store.add_verdict("c1", round_id="r1", verdict="verified", created_unix_ns=1,
                          measurement_ids=[], landmarks=[], reason="",
                          assessment={"estimate": {"lat": 51.31, "lon": 9.48}},
                          licence={"allowed": ["JPN"]})
        store.add_verdict("c1", round_id="r2", verdict="inconclusive", created_unix_ns=2,
                          measurement_ids=[], landmarks=[], reason="no_answer",
                          assessment=None, licence={"allowed": ["JPN"]})
        assert _anchor(store, chip, [landmark]) == (51.31, 9.48)
    finally:
        store.close()
