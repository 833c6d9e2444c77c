"""`lightfence audit verify bundle.json --ca vendor_ca.pub --log-key log.pub
[--min-key-protection LEVEL] [--unpinned] [--revocations revocations.json]`.

Prints the audit report as JSON on stdout. Exit status: 0 every check passed, 1 at least one
finding (each names the entry, the field, expected and found), 2 the bundle or a key file could
not be read at all. A key not pinned is taken from the bundle, which proves nothing against a
forger, so it is a finding (exit 1) unless ``--unpinned`` asks for that look explicitly, which
is then said on stderr in capitals.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any

from audit.verify import AuditError, verify_bundle
from protocol.certs import ca_public_key_from_json
from protocol.errors import ProtocolError
from protocol.key_protection import KEY_PROTECTION_LEVELS
from protocol.revocation import Revocation

logger = logging.getLogger(__name__)


def register(subparsers: Any) -> None:
    parser = subparsers.add_parser(
        "audit", help="offline audit of evidence bundles (no network, no verifier database)"
    )
    commands = parser.add_subparsers(dest="audit_command", metavar="COMMAND", required=True)
    verify = commands.add_parser(
        "verify", help="re-check every signature, proof and verdict in an evidence bundle"
    )
    verify.add_argument("bundle", type=Path, help="bundle JSON from `lightfence evidence export`")
    verify.add_argument(
        "--ca", type=Path, help="vendor CA public key file to pin (needed unless --unpinned)"
    )
    verify.add_argument(
        "--log-key",
        type=Path,
        help="verifier log public key file to pin (needed unless --unpinned)",
    )
    verify.add_argument(
        "--min-key-protection", choices=KEY_PROTECTION_LEVELS, default=None,
        help="least chip key protection to accept for a `verified` (default: the policy's "
        "minimum as stated in each verdict)",
    )
    verify.add_argument(
        "--unpinned",
        action="store_true",
        help="accept keys taken from the bundle itself (a self-signed forgery then passes): "
        "only to look at a bundle, never to trust it",
    )
    verify.add_argument(
        "--revocations",
        type=Path,
        help="revocation list to apply on top of the entries' own (JSON from "
        "`lightfence verifier revocations` or GET /v1/revocations)",
    )
    verify.set_defaults(handler=_verify)


def read_public_key(path: Path) -> bytes:
    """A public key file (`{"public_key_b64": ...}`, as `lightfence keys ca` writes ca.pub.json)."""
    try:
        return ca_public_key_from_json(json.loads(path.read_text(encoding="utf-8")))
    except ProtocolError as exc:
        raise ProtocolError(f"{path}: {exc}") from exc


def read_revocations(path: Path) -> list[Revocation]:
    """A revocation list file: `{"items": [...]}` (the API's shape) or a bare list."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    items = raw.get("items") if isinstance(raw, dict) else raw
    if not isinstance(items, list):
        raise ValueError(f"{path}: not a revocation list")
    return [Revocation.from_json(item) for item in items]


def _verify(args: argparse.Namespace) -> int:
    try:
        bundle = json.loads(Path(args.bundle).read_text(encoding="utf-8"))
        ca = None if args.ca is None else read_public_key(args.ca)
        log_key = None if args.log_key is None else read_public_key(args.log_key)
        revoked = [] if args.revocations is None else read_revocations(args.revocations)
        report = verify_bundle(
            bundle, ca_public_key=ca, log_public_key=log_key,
            min_key_protection=args.min_key_protection, allow_unpinned=args.unpinned,
            revocations=revoked,
        )  # fmt: skip
    except (OSError, ValueError, ProtocolError, AuditError) as exc:
        print(f"lightfence audit: {exc}", file=sys.stderr)
        return 2
    if args.unpinned and (ca is None or log_key is None):
        missing = " and ".join(
            name for name, key in (("--ca", ca), ("--log-key", log_key)) if key is None
        )
        print(
            f"lightfence audit: UNPINNED AUDIT: no {missing}; the keys were taken from the "
            "bundle itself, so a self-signed forgery passes this audit. Do not rely on it.",
            file=sys.stderr,
        )
    print(json.dumps(report.to_json(), indent=2, sort_keys=True))
    for finding in report.findings:
        logger.warning("%s at %s: %s", finding.check, finding.where, finding.message)
    return 0 if report.ok else 1
