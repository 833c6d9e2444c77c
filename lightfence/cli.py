"""The one `lightfence` command line.

Each deployable part owns its subcommands in a `cli` module exposing
`register(subparsers)`; every subcommand sets `handler=callable(args) -> int`.
Only this module configures logging.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from lightfence import __version__

# Modules that contribute subcommands, in help order.
PART_CLI_MODULES: tuple[str, ...] = (
    "lightfence.demo.cli",
    "geo.cli",
    "geo.audit_cli",
    "verifier.cli",
    "verifier.evidence_cli",
    "audit.cli",
    "protocol.cli",
    "device_agent.cli",
    "landmark_node.cli",
    "benchmarks.sim.cli",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="lightfence", description="Delay-based location verification for AI chips."
    )
    parser.add_argument("--version", action="version", version=f"lightfence {__version__}")
    parser.add_argument(
        "--log-level", default="WARNING", help="logging level (DEBUG, INFO, WARNING, ERROR)"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in PART_CLI_MODULES:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help(sys.stderr)
        return 2
    return int(handler(args))
