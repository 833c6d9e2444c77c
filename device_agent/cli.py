"""`lightfence agent run --config agent.toml [--simulate N]` and `lightfence agent attest …`
(GPU attestation with the verifier: once, or every --every-s seconds)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx

from device_agent.agent import run_agent
from device_agent.config import load_agent_config
from device_agent.errors import AgentError
from device_agent.gpu_attestation import attest_chip
from keystore.key_files import load_signer
from keystore.token_files import read_token_file
from protocol.errors import ProtocolError


@contextlib.contextmanager
def _stop_on_signals() -> Iterator[threading.Event]:
    """An event SIGTERM and SIGINT set while the command runs. The previous handlers come back
    afterwards: `main(argv)` run inside another process (the tests) must not leave a handler
    behind, or that process's forked children would ignore the SIGTERM meant to end them."""
    stop = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stop.set())
                for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield stop
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _run(args: argparse.Namespace) -> int:
    with _stop_on_signals() as stop:
        try:
            run_agent(load_agent_config(args.config), args.simulate, stop)
        except (AgentError, ProtocolError, OSError) as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
    return 0


def _attest(args: argparse.Namespace) -> int:
    with _stop_on_signals() as stop:
        return _attest_until(args, stop)


def _attest_until(args: argparse.Namespace, stop: threading.Event) -> int:
    try:
        token = read_token_file(args.token_file)
        public_key = load_signer(args.key_dir / f"{args.chip_id}.key").public_key()
    except ProtocolError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with httpx.Client(base_url=args.verifier, timeout=30.0,
                      headers={"Authorization": f"Bearer {token}"}) as client:
        while True:
            try:
                result = attest_chip(client, args.chip_id, public_key, args.gpu_index)
                print(f"chip {args.chip_id}: GPU {result['gpu_id']} attested", flush=True)
            except (AgentError, httpx.HTTPError) as exc:
                print(f"error: {exc}", file=sys.stderr)
                if args.every_s is None:
                    return 1
            if args.every_s is None or stop.wait(args.every_s):
                return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    agent = subparsers.add_parser("agent", help="the device agent on a GPU host")
    sub = agent.add_subparsers(dest="agent_command", metavar="ACTION", required=True)
    run = sub.add_parser("run", help="answer landmark challenges for this host's chips")
    run.add_argument("--config", type=Path, required=True, help="agent.toml")
    run.add_argument("--simulate", type=int, metavar="N",
                     help="serve N software chips sim-0… instead of NVML GPUs")
    run.set_defaults(handler=_run)
    attest = sub.add_parser("attest", help="GPU attestation with the verifier (enrol, re-attest)")
    attest.add_argument("--verifier", required=True, help="verifier base URL")
    attest.add_argument("--token-file", type=Path, required=True, help="bearer token, mode 0600")
    attest.add_argument("--chip-id", required=True)
    attest.add_argument("--key-dir", type=Path, required=True, help="holds <chip_id>.key")
    attest.add_argument("--gpu-index", type=int, default=0, help="NVML index of the chip's GPU")
    attest.add_argument("--every-s", type=float, default=None,
                        help="re-attest this often (default: once)")
    attest.set_defaults(handler=_attest)
