"""`lightfence verifier channel|route|mute`: the same checks as the API, secrets never printed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lightfence.cli import main
from verifier.config import default_config
from verifier.store import open_store


def _config(tmp_path: Path) -> Path:
    path = tmp_path / "verifier.toml"
    path.write_text(f'[verifier]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    return path


def test_channel_route_and_mute_from_the_cli(tmp_path: Path, database_url: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    config = str(_config(tmp_path))
    at = ["--database-url", database_url] if database_url else []
    settings = tmp_path / "hook.json"
    settings.write_text(json.dumps({"url": "https://hooks.example/T1/xyz"}), encoding="utf-8")
    assert main(["verifier", "channel", "--config", config, *at, "set", "ops-slack", "--kind",
                 "slack", "--settings", str(settings)]) == 0
    assert "hooks.example" not in capsys.readouterr().out
    assert main(["verifier", "route", "--config", config, *at, "add", "ops-slack", "--type",
                 "went_dark", "--min-severity", "high", "--zone", "fra-1"]) == 0
    rule = json.loads(capsys.readouterr().out)
    assert (rule["alert_types"], rule["zones"]) == (["went_dark"], ["fra-1"])
    assert main(["verifier", "mute", "--config", config, *at, "add", "--reason", "CHG-1",
                 "--for-s", "3600", "--zone", "fra-1"]) == 0
    capsys.readouterr()
    store = open_store(default_config(data_dir=tmp_path / "data", database_url=database_url))
    try:
        assert [c.settings["url"] for c in store.channels()] == ["https://hooks.example/T1/xyz"]
        assert [m.reason for m in store.mutes(None)] == ["CHG-1"]
    finally:
        store.close()


def test_cli_refuses_bad_input_with_the_reason(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    config = str(_config(tmp_path))
    settings = tmp_path / "hook.json"
    settings.write_text(json.dumps({"url": "https://x", "secret": ""}), encoding="utf-8")
    assert main(["verifier", "channel", "--config", config, "set", "h", "--kind", "webhook",
                 "--settings", str(settings)]) == 2
    assert "'secret' must be a non-empty string" in capsys.readouterr().err
    assert main(["verifier", "route", "--config", config, "add", "nope"]) == 2
    assert "no channel nope" in capsys.readouterr().err
    assert main(["verifier", "mute", "--config", config, "add", "--reason", "r",
                 "--for-s", "60"]) == 2
    assert "needs a scope" in capsys.readouterr().err
