"""The one `lightfence` command line.

Each deployable part owns its subcommands in a `cli` module exposing
`register(subparsers)`; every subcommand sets `handler=callable(args) -> int`.
Only this module configures logging. `bench` belongs to the optional simulator (`sim/`, the
`sim` extra): it is imported only when `lightfence bench ...` runs, so the product's parts never
load it.
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
    "keystore.cli",
    "device_agent.cli",
    "landmark_node.cli",
)
SIM_CLI_MODULE = "sim.cli"


def _register_bench(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`bench ARGS...`: ARGS go unparsed to the simulator's own parser (its --help included)."""
    bench = subparsers.add_parser(
        "bench",
        add_help=False,
        help="topology simulator and fleet planner (the 'sim' extra; see docs/sim.md)",
    )
    bench.add_argument("-h", "--help", action="store_true", dest="bench_help")
    bench.add_argument("bench_args", nargs=argparse.REMAINDER)
    bench.set_defaults(handler=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    try:
        sim_cli = importlib.import_module(SIM_CLI_MODULE)
    except ModuleNotFoundError as exc:
        print(
            f"lightfence bench: the simulator is not installed ({exc.name} is missing); "
            "install it with pip install 'lightfence[sim]'",
            file=sys.stderr,
        )
        return 2
    argv = ["--help"] if args.bench_help else args.bench_args
    return int(sim_cli.main(argv, prog="lightfence bench"))


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
    _register_bench(subparsers)
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
