"""docs/deploy.md's example replica configuration and systemd template are what the verifier
and systemd would actually read."""

from __future__ import annotations

from pathlib import Path

from tests.deploy.test_packaging import (
    test_systemd_units_run_a_real_command_unprivileged_and_hardened as check_unit,
)
from verifier.config import load_config

ROOT = Path(__file__).resolve().parents[2]


def test_the_example_replica_config_loads_and_names_postgresql() -> None:
    config = load_config(ROOT / "deploy" / "verifier-replica.toml")
    assert config.database_url.startswith("postgresql://")
    assert config.data_dir == Path("/var/lib/lightfence")
    assert len(config.ca_public_key) == 32
    assert not config.metrics_public


def test_the_replica_template_unit_is_hardened_and_runs_serve_on_its_port(
        tmp_path: Path) -> None:
    template = (ROOT / "deploy" / "lightfence-verifier@.service").read_text(encoding="utf-8")
    assert "--port %i" in template and "docs/deploy.md" in template
    instance = tmp_path / "lightfence-verifier@8081.service"  # what systemd runs for @8081
    instance.write_text(template.replace("%i", "8081"), encoding="utf-8")
    check_unit(instance)
