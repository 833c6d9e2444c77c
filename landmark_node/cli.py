"""`lightfence landmark serve --config landmark.toml`."""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path

from landmark_node.config import load_landmark_config
from landmark_node.errors import LandmarkError
from landmark_node.service import LandmarkService
from protocol.errors import ProtocolError


async def _serve(service: LandmarkService) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    await service.run(stop)


def _run(args: argparse.Namespace) -> int:
    try:
        service = LandmarkService(load_landmark_config(args.config))
        asyncio.run(_serve(service))
    except (LandmarkError, ProtocolError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    landmark = subparsers.add_parser("landmark", help="a landmark node (challenger)")
    sub = landmark.add_subparsers(dest="landmark_command", metavar="ACTION", required=True)
    serve = sub.add_parser("serve", help="challenge targets and spool signed measurements")
    serve.add_argument("--config", type=Path, required=True, help="landmark.toml")
    serve.set_defaults(handler=_run)
