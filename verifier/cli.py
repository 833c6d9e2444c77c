"""`lightfence verifier …` subcommands: serve, token (and channel, route, mute: ops_cli)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from verifier import ops_cli
from verifier.config import VerifierConfig, load_config
from verifier.errors import VerifierError
from verifier.roles import ROLES


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("verifier", help="run and administer the verifier service")
    sub = parser.add_subparsers(dest="verifier_command", metavar="SUBCOMMAND", required=True)
    serve = sub.add_parser("serve", help="run the HTTP verifier")
    serve.add_argument("--config", type=Path, required=True, help="verifier TOML file")
    serve.add_argument("--host", help="override the listen host")
    serve.add_argument("--port", type=int, help="override the listen port")
    serve.add_argument("--data-dir", type=Path, help="override the data directory")
    serve.set_defaults(handler=_serve)
    token = sub.add_parser("token", help="create an API token (printed once, stored hashed)")
    token.add_argument("--config", type=Path, required=True)
    token.add_argument("--role", choices=ROLES, required=True,
                       help="viewer, auditor, operator, admin or landmark (docs/operations.md)")
    token.add_argument("--label", required=True, help="who holds it (recorded as `by`)")
    token.add_argument("--landmark-id", help="required for role landmark")
    token.add_argument("--data-dir", type=Path, help="override the data directory")
    token.set_defaults(handler=_token)
    ops_cli.register(sub)


def _config(args: argparse.Namespace) -> VerifierConfig:
    return load_config(args.config, host=getattr(args, "host", None),
                       port=getattr(args, "port", None), data_dir=args.data_dir)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from verifier.app import create_app

    try:
        config = _config(args)
    except VerifierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    uvicorn.run(create_app(config), host=config.host, port=config.port, log_config=None,
                access_log=False)
    return 0


def _token(args: argparse.Namespace) -> int:
    from verifier.auth import issue_token
    from verifier.store import SqliteStore

    try:
        config = _config(args)
        store = SqliteStore(config.db_path, config.sqlite_synchronous)
        try:
            _, secret = issue_token(store, role=args.role, label=args.label,
                                    landmark_id=args.landmark_id, now_unix_ns=time.time_ns())
        finally:
            store.close()
    except VerifierError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(secret)
    return 0
