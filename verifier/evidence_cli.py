"""`lightfence evidence export --chip ID --from T1 --to T2 -o bundle.json`.

Reads the evidence log's tables straight from the verifier's database (its SQLite file, or the
PostgreSQL database a `--config` names), so it works with the verifier stopped and from any
machine that reaches the database. The bundle's manifest is signed with the log key
(``--sign-with``, else the verifier's own key file). Times are unix nanoseconds or ISO 8601
(``2025-01-31T12:00:00Z``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from keystore.key_files import load_signer
from protocol.errors import ProtocolError
from verifier.config import load_config
from verifier.errors import InvalidInputError, NotFoundError, VerifierError
from verifier.evidence import export_bundle
from verifier.store import open_store
from verifier.translog import TransparencyLog

logger = logging.getLogger(__name__)
DB_FILE_NAME = "verifier.sqlite3"  # the verifier's file inside its data directory


def parse_time_ns(text: str) -> int:
    """Unix nanoseconds, or an ISO 8601 time with a zone (naive times are refused)."""
    if text.lstrip("-").isdigit():
        return int(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"{text!r}: not unix ns nor ISO 8601") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r}: give a time zone (e.g. Z)")
    return round(moment.timestamp() * 1e9)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser("evidence", help="export tamper-evident verdict evidence")
    commands = parser.add_subparsers(dest="evidence_command", metavar="COMMAND", required=True)
    export = commands.add_parser(
        "export", help="write a chip's evidence bundle (entries, proofs, signed tree heads)"
    )
    export.add_argument("--chip", required=True, help="chip id")
    export.add_argument("--from", dest="from_ns", required=True, type=parse_time_ns)
    export.add_argument("--to", dest="to_ns", required=True, type=parse_time_ns)
    export.add_argument("-o", "--output", required=True, type=Path, help="bundle JSON to write")
    source = export.add_mutually_exclusive_group()
    source.add_argument("--config", type=Path, help="verifier TOML (its data_dir is read)")
    source.add_argument(
        "--data-dir", type=Path, default=Path("verifier-data"), help="verifier data directory"
    )
    export.add_argument(
        "--sign-with",
        type=Path,
        help="the log's key file: sign a fresh tree head first so every entry is covered "
        "(the verifier signs one every tree_head_interval_s and at shutdown by itself); "
        "without it the manifest is signed with the verifier's log key file (log_key_file, "
        "default DATA_DIR/log.key)",
    )
    export.set_defaults(handler=_export)


def _export(args: argparse.Namespace) -> int:
    key_path: Path | None = args.sign_with
    signer = None
    try:
        config = load_config(args.config) if args.config else None
        data_dir = config.data_dir if config is not None else args.data_dir
        db_path = Path(data_dir) / DB_FILE_NAME
        on_postgres = config is not None and bool(config.database_url)
        if not on_postgres and not db_path.exists():
            print(f"lightfence evidence: no verifier database at {db_path}", file=sys.stderr)
            return 2
        if key_path is None:
            key_path = config.log_key_path if config is not None else Path(data_dir) / "log.key"
        signer = load_signer(key_path) if key_path.exists() or args.sign_with else None
        source = open_store(config) if config is not None and on_postgres else db_path
        with TransparencyLog(source, owns_store=True) as log:
            bundle = export_bundle(
                log, args.chip, args.from_ns, args.to_ns, signer=signer,
                sign_fresh_head=args.sign_with is not None, now_unix_s=int(time.time()),
            )  # fmt: skip
    except NotFoundError as exc:
        print(f"lightfence evidence: {exc} (the verifier signs a head every "
              "tree_head_interval_s and at shutdown; or pass --sign-with)", file=sys.stderr)
        return 2
    except InvalidInputError as exc:
        hint = "" if signer is not None else f" (no log key at {key_path}; pass --sign-with)"
        print(f"lightfence evidence: {exc}{hint}", file=sys.stderr)
        return 2
    except (VerifierError, ProtocolError, OSError) as exc:
        print(f"lightfence evidence: {exc}", file=sys.stderr)
        return 2
    tmp = args.output.with_name(args.output.name + ".tmp")
    tmp.write_text(json.dumps(bundle, indent=1, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(args.output)
    print(
        f"wrote {args.output}: {len(bundle['entries'])} entries, "
        f"{len(bundle['tree_heads'])} tree heads, {bundle['omitted_uncovered']} left out "
        "(newer than the latest signed tree head)"
    )
    return 0
