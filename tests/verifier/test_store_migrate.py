"""Schema migrations and backend selection: `database_url`, `lightfence verifier migrate`,
migrations applied once (also by processes starting together), clear errors."""

from __future__ import annotations

import json
import threading
from pathlib import Path

import psycopg
import pytest

from lightfence.cli import main
from tests.verifier.pg_cluster import Cluster
from verifier.config import default_config
from verifier.errors import ConfigError
from verifier.store import SqliteStore, StoreError, open_store
from verifier.store.postgres import PostgresStore
from verifier.store.schema import MIGRATIONS


def _config(tmp_path: Path) -> str:
    path = tmp_path / "verifier.toml"
    path.write_text(f'[verifier]\ndata_dir = "{tmp_path / "data"}"\n', encoding="utf-8")
    return str(path)


def test_migrate_command_on_each_backend(tmp_path: Path, database_url: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    at = ["--database-url", database_url] if database_url else []
    assert main(["verifier", "migrate", "--config", _config(tmp_path), *at]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["schema_version"] == MIGRATIONS[-1].version
    assert printed["backend"].startswith("postgresql" if database_url else "sqlite")
    store = open_store(default_config(data_dir=tmp_path / "data", database_url=database_url))
    try:
        assert isinstance(store, PostgresStore if database_url else SqliteStore)
        assert store.schema_version() == MIGRATIONS[-1].version
        assert store.migrate() == []  # nothing left to apply
    finally:
        store.close()


def test_processes_starting_together_apply_each_migration_once(pg_cluster: Cluster) -> None:
    with psycopg.connect(pg_cluster.url("postgres"), autocommit=True) as conn:
        conn.execute("CREATE DATABASE empty_for_migrations")  # no schema yet
    url = pg_cluster.url("empty_for_migrations")
    opened: list[PostgresStore] = []
    errors: list[BaseException] = []

    def start() -> None:
        try:
            opened.append(PostgresStore(url))
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with psycopg.connect(url) as conn:
        versions = [r[0] for r in conn.execute("SELECT version FROM schema_version")]
    assert versions == [m.version for m in MIGRATIONS]
    for store in opened:
        store.close()
    pg_cluster.drop(url)


def test_a_database_url_that_is_not_postgresql_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="database_url must be empty"):
        default_config(data_dir=tmp_path, database_url="mysql://db/lightfence")


def test_an_unreachable_database_fails_with_the_reason_and_no_password(tmp_path: Path) -> None:
    url = f"postgresql://lf:secret@/lightfence?host={tmp_path}/no-server-here"
    with pytest.raises(StoreError, match="cannot connect to PostgreSQL") as refused:
        PostgresStore(url, connect_timeout_s=0.5)
    assert "secret" not in str(refused.value)


def test_migrate_reports_an_unreachable_database(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    url = f"postgresql://lf@/lightfence?host={tmp_path}/no-server-here&connect_timeout=1"
    assert main(["verifier", "migrate", "--config", _config(tmp_path),
                 "--database-url", url]) == 2
    assert "cannot connect to PostgreSQL" in capsys.readouterr().err
