"""The delay relays as a process of their own: `python -m lightfence.demo.relay_process SPEC`.

The relays are the emulated network, so they must not share an event loop with anything that
can stall it (the demo parses large API answers every second): any stall there would be added
to every RTT. They run here on uvloop when it is installed (it is, with uvicorn[standard]).
SPEC is a JSON file written by the demo (`write_spec`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lightfence.demo.geography import PathModel, Place
from lightfence.demo.relay import RelayFront

Address = tuple[str, int]


def write_spec(
    path: Path,
    fronts: Sequence[tuple[Address, Address, Sequence[Place]]],
    senders: dict[str, Place],
    model: PathModel,
) -> None:
    spec = {
        "model": asdict(model),
        "senders": {host: asdict(place) for host, place in senders.items()},
        "fronts": [
            {"public": list(public), "upstream": list(upstream),
             "hops": [asdict(place) for place in hops]}
            for public, upstream, hops in fronts
        ],
    }
    path.write_text(json.dumps(spec, indent=1), encoding="utf-8")


def _place(obj: dict[str, Any]) -> Place:
    return Place(str(obj["name"]), float(obj["lat_deg"]), float(obj["lon_deg"]))


async def serve(spec: dict[str, Any]) -> None:
    model = PathModel(**spec["model"])
    senders = {host: _place(place) for host, place in spec["senders"].items()}
    fronts = [
        RelayFront((front["public"][0], int(front["public"][1])),
                   (front["upstream"][0], int(front["upstream"][1])),
                   [_place(hop) for hop in front["hops"]], senders, model, seed=index)
        for index, front in enumerate(spec["fronts"])
    ]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    for front in fronts:
        await front.start()
    print(f"relaying {len(fronts)} endpoints", flush=True)
    try:
        await stop.wait()
    finally:
        for front in fronts:
            front.close()
        dropped = sum(sum(front.stats.dropped.values()) for front in fronts)
        forwarded = sum(front.stats.forwarded for front in fronts)
        print(f"relay stopped: forwarded {forwarded}, dropped {dropped}", flush=True)


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m lightfence.demo.relay_process SPEC.json", file=sys.stderr)
        return 2
    with contextlib.suppress(ImportError):
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    asyncio.run(serve(json.loads(Path(argv[0]).read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
