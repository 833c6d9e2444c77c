"""`lightfence demo [--duration S] [--json] [--small] [--keep DIR]`."""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import tempfile
from pathlib import Path

from rich.console import Console
from rich.live import Live

from lightfence.demo.runner import DemoError, DemoOptions, Snapshot, run_demo
from lightfence.demo.scenario import full_scenario, small_scenario
from lightfence.demo.view import checks_passed, notes, render, summary


def _run(args: argparse.Namespace) -> int:
    scenario = small_scenario() if args.small else full_scenario()
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="lightfence-demo-"))
    workdir.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    console.print(f"[bold]Lightfence demo[/]: {len(scenario.landmarks)} landmarks, "
                  f"{len(scenario.chips)} chips, {args.duration:.0f} s; files in {workdir}")
    for line in notes(scenario):
        console.print(f"  - {line}")
    options = DemoOptions(scenario, workdir, args.duration, fast=args.small)
    live = Live(console=console, auto_refresh=False, transient=False) if console.is_terminal \
        else None

    def on_update(snapshot: Snapshot) -> None:
        if live is not None:
            live.update(render(snapshot, scenario), refresh=True)
        elif int(snapshot.elapsed_s) % 10 == 0:
            console.print(render(snapshot, scenario))

    try:
        if live is not None:
            live.start()
        try:
            snapshot = asyncio.run(run_demo(options, on_update))
        finally:
            if live is not None:
                live.stop()
    except KeyboardInterrupt:
        console.print("interrupted: every process was stopped")
        return 130
    except DemoError as exc:
        console.print(f"[red]demo failed:[/] {exc}")
        return 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    result = summary(snapshot, scenario)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        console.print(render(snapshot, scenario))
        console.print_json(data=result["checks"])
    return 0 if checks_passed(result) else 1


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    demo = subparsers.add_parser(
        "demo", help="the whole system live on loopback: verifier, landmarks, agents, relays"
    )
    demo.add_argument("--duration", type=float, default=60.0, help="seconds to run (default 60)")
    demo.add_argument("--json", action="store_true", help="print a JSON summary on stdout")
    demo.add_argument("--small", action="store_true",
                      help="the scaled-down world of the end-to-end test (faster rounds)")
    demo.add_argument("--keep", metavar="DIR", help="keep keys, configs, logs and data in DIR")
    demo.set_defaults(handler=_run)


