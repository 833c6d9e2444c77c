"""A throw-away PostgreSQL cluster for the tests: initdb into a temporary directory, a server
listening only on a Unix socket there (no TCP port, so concurrent test runs never collide),
one template database with the schema applied, and a fresh database per test copied from it.

PostgreSQL refuses to run as root; as root the server runs as the `postgres` user (or `nobody`)
through `runuser`. When the binaries are missing, `find_binaries` says why, for the skip.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

_SEARCH = ("/usr/lib/postgresql/*/bin", "/usr/local/bin", "/usr/bin")
_USER = "lightfence"
TEMPLATE = "lightfence_template"


def find_binaries(search: tuple[str, ...] = _SEARCH) -> tuple[Path | None, str]:
    """The directory holding initdb, pg_ctl and postgres (newest version first); else None
    and the reason."""
    candidates: list[Path] = []
    for pattern in search:
        candidates.extend(sorted(Path("/").glob(pattern.lstrip("/")), reverse=True))
    for directory in candidates:
        if all((directory / tool).is_file() for tool in ("initdb", "pg_ctl", "postgres")):
            return directory, ""
    return None, ("PostgreSQL server binaries (initdb, pg_ctl, postgres) not found in "
                  f"{', '.join(search)}; scripts/test.sh installs them (apt-get install "
                  "postgresql)")


def _run_as() -> list[str]:
    """The command prefix that runs the server as an unprivileged user when we are root."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"]
    raise RuntimeError("running as root and neither a `postgres` nor a `nobody` user exists")


@dataclass
class Cluster:
    """A running server; `fresh_url()` gives a new empty-but-migrated database each call."""

    directory: Path
    binaries: Path
    prefix: list[str]
    _names: itertools.count[int]

    @classmethod
    def start(cls, binaries: Path, *, durable: bool = False) -> Cluster:
        """`durable`: keep fsync on (benchmarks compare engines at their real commit cost)."""
        directory = Path(tempfile.mkdtemp(prefix="lightfence-pg-"))
        prefix = _run_as()
        if prefix:
            owner = pwd.getpwnam(prefix[2])
            os.chown(directory, owner.pw_uid, owner.pw_gid)
        data = directory / "data"
        subprocess.run([*prefix, str(binaries / "initdb"), "-D", str(data), "-U", _USER,
                        "--auth=trust", "--encoding=UTF8", "--locale=C", "--no-sync"],
                       check=True, capture_output=True)
        # fsync off: the tests kill verifier processes, never the database server, so the
        # server's own crash safety is not under test and costs seconds per run.
        options = (f"-k {directory} -c listen_addresses='' -c max_connections=200"
                   + ("" if durable else " -c fsync=off -c full_page_writes=off"))
        subprocess.run([*prefix, str(binaries / "pg_ctl"), "-D", str(data), "-l",
                        str(directory / "server.log"), "-o", options, "-w", "start"],
                       check=True, capture_output=True)
        cluster = cls(directory, binaries, prefix, itertools.count(1))
        cluster._make_template()
        return cluster

    def url(self, database: str) -> str:
        return f"postgresql://{_USER}@/{database}?host={self.directory}"

    def _make_template(self) -> None:
        from verifier.store.postgres import PostgresStore

        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {TEMPLATE}")
        PostgresStore(self.url(TEMPLATE)).close()  # the schema, once

    def fresh_url(self) -> str:
        """A new database holding the migrated, empty schema (a copy of the template)."""
        name = f"test_{next(self._names)}"
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name} TEMPLATE {TEMPLATE}")
        return self.url(name)

    def drop(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        with psycopg.connect(self.url("postgres"), autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    def stop(self) -> None:
        subprocess.run([*self.prefix, str(self.binaries / "pg_ctl"), "-D",
                        str(self.directory / "data"), "-m", "immediate", "stop"],
                       check=False, capture_output=True)
        shutil.rmtree(self.directory, ignore_errors=True)
