"""`lightfence agent run --config agent.toml [--simulate N]`."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path

from device_agent.agent import run_agent
from device_agent.config import load_agent_config
from device_agent.errors import AgentError
from protocol.errors import ProtocolError


def _run(args: argparse.Namespace) -> int:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        run_agent(load_agent_config(args.config), args.simulate, stop)
    except (AgentError, ProtocolError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agent = subparsers.add_parser("agent", help="the device agent on a GPU host")
    sub = agent.add_subparsers(dest="agent_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="answer landmark challenges for this host's chips")
    run.add_argument("--config", type=Path, required=True, help="agent.toml")
    run.add_argument("--simulate", type=int, metavar="N",
                     help="serve N software chips sim-0… instead of NVML GPUs")
    run.set_defaults(handler=_run)
