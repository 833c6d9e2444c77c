"""The configured backend: PostgreSQL when `database_url` is set, else the SQLite file."""

from __future__ import annotations

from verifier.config import VerifierConfig
from verifier.store.interface import Store
from verifier.store.sqlite import SqliteStore


def open_store(config: VerifierConfig) -> Store:
    """Open the store and apply the migrations it lacks."""
    if config.database_url:
        from verifier.store.postgres import PostgresStore  # psycopg only when configured

        return PostgresStore(config.database_url)
    return SqliteStore(config.db_path, config.sqlite_synchronous)
