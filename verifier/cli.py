"""`lightfence verifier …` subcommands: serve, migrate, token, tokens, disable-token, revoke,
revocations (and channel, route, mute: ops_cli; chips: chips_cli, over HTTP)."""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from verifier import chips_cli, ops_cli
from verifier.cli_store import store_command
from verifier.config import VerifierConfig, load_config
from verifier.errors import VerifierError
from verifier.roles import ROLES
from verifier.store import Store


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("verifier", help="run and administer the verifier service")
    sub = parser.add_subparsers(dest="verifier_command", metavar="SUBCOMMAND", required=True)
    serve = sub.add_parser("serve", help="run the HTTP verifier")
    serve.add_argument("--config", type=Path, required=True, help="verifier TOML file")
    serve.add_argument("--host", help="override the listen host")
    serve.add_argument("--port", type=int, help="override the listen port")
    serve.add_argument("--data-dir", type=Path, help="override the data directory")
    serve.set_defaults(handler=_serve)
    migrate = sub.add_parser("migrate", help="apply the database schema migrations and exit"
                             " (serve applies them too)")
    migrate.add_argument("--config", type=Path, required=True, help="verifier TOML file")
    migrate.add_argument("--data-dir", type=Path, help="override the data directory")
    migrate.set_defaults(handler=_migrate)
    token = sub.add_parser("token", help="create an API token (printed once, stored hashed)")
    token.add_argument("--config", type=Path, required=True)
    token.add_argument("--role", choices=ROLES, required=True,
                       help="viewer, auditor, operator, admin or landmark (docs/operations.md)")
    token.add_argument("--label", required=True, help="who holds it (recorded as `by`)")
    token.add_argument("--landmark-id", help="required for role landmark")
    token.add_argument("--data-dir", type=Path, help="override the data directory")
    token.add_argument("--expires-in-s", type=float,
                       help="the token stops working this many seconds from now")
    token.set_defaults(handler=_token)
    ops_cli.register(sub)
    chips_cli.register(sub)
    tokens = sub.add_parser("tokens", help="list API tokens (JSON; never the secrets)")
    disable = sub.add_parser("disable-token", help="disable an API token for good")
    disable.add_argument("--token-id", type=int, required=True)
    disable.add_argument("--reason", required=True)
    revoke = sub.add_parser("revoke", help="revoke a landmark or chip key (final)")
    revoke.add_argument("--kind", choices=("landmark", "chip"), required=True)
    revoke.add_argument("--match", choices=("id", "public_key", "serial"), default="id",
                        help="id: every key of it; public_key: that key; serial: chip serial")
    revoke.add_argument("--value", required=True, help="the id, base64 key or serial")
    revoke.add_argument("--reason", required=True)
    revocations = sub.add_parser(
        "revocations", help="print the revocation list (JSON, for `audit verify --revocations`)")
    for admin in (tokens, disable, revoke, revocations):
        admin.add_argument("--config", type=Path, required=True)
        admin.add_argument("--data-dir", type=Path, help="override the data directory")
    for command in (serve, migrate, token, tokens, disable, revoke, revocations):
        command.add_argument("--database-url",
                             help="override database_url (postgresql://...; default SQLite)")
    tokens.set_defaults(handler=store_command(_tokens))
    disable.set_defaults(handler=store_command(_disable_token))
    revoke.set_defaults(handler=store_command(_revoke))
    revocations.set_defaults(handler=store_command(_revocations))


def _config(args: argparse.Namespace) -> VerifierConfig:
    return load_config(args.config, host=getattr(args, "host", None),
                       port=getattr(args, "port", None), data_dir=args.data_dir,
                       database_url=args.database_url)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from verifier.app import create_app

    try:
        config = _config(args)
    except VerifierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    app = create_app(config)
    freeze_start_up()
    uvicorn.run(app, host=config.host, port=config.port, log_config=None, access_log=False)
    return 0


def freeze_start_up() -> int:
    """Move every object alive now (modules, the app, the border data) out of the collector's
    reach for the life of the process, so a full collection walks only what serving creates
    (benchmarks/fleet_gc.py measures the pause; a full collection holds the GIL, stalling the
    event loop and the database thread). Serve only: a test process would leak what it froze.
    Returns how many objects were frozen."""
    gc.collect()  # what start-up already dropped is not frozen
    gc.freeze()
    return gc.get_freeze_count()


def _migrate(args: argparse.Namespace) -> int:
    """Open the configured database, which applies the migrations it lacks; print its version."""
    from verifier.store import StoreError, open_store
    from verifier.store.schema import MIGRATIONS

    try:
        config = _config(args)
        store = open_store(config)
    except (VerifierError, StoreError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    store.close()
    backend = "postgresql" if config.database_url else f"sqlite {config.db_path}"
    print(json.dumps({"backend": backend, "schema_version": MIGRATIONS[-1].version}))
    return 0


def _token(args: argparse.Namespace) -> int:
    from verifier.auth import issue_token
    from verifier.store import open_store

    try:
        config = _config(args)
        store = open_store(config)
        try:
            now = time.time_ns()
            expires = (None if args.expires_in_s is None
                       else now + int(args.expires_in_s * 1_000_000_000))
            _, secret = issue_token(store, role=args.role, label=args.label,
                                    landmark_id=args.landmark_id, now_unix_ns=now,
                                    expires_unix_ns=expires)
        finally:
            store.close()
    except VerifierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(secret)
    return 0


def _tokens(store: Store, _: argparse.Namespace) -> object:
    return {"items": [asdict(info) for info in store.token_infos()]}


def _disable_token(store: Store, args: argparse.Namespace) -> object:
    from verifier.revocations import disable_token

    return asdict(disable_token(store, args.token_id, by="cli", reason=args.reason,
                                now_unix_ns=time.time_ns()))


def _revoke(store: Store, args: argparse.Namespace) -> object:
    from verifier.revocations import revoke

    return revoke(store, kind=args.kind, match=args.match, value=args.value,
                  reason=args.reason, by="cli", now_unix_ns=time.time_ns()).to_json()


def _revocations(store: Store, _: argparse.Namespace) -> object:
    return {"items": [r.to_json() for r in store.revocations()]}
