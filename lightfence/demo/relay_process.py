"""The delay relays as a process of their own: `python -m lightfence.demo.relay_process SPEC`.

The relays are the emulated network, so they must not share a process with anything that can
stall it (the demo parses large API answers every second): any stall there would be added to
every RTT. SPEC is a JSON file written by the demo (`write_spec`).
"""

from __future__ import annotations

import json
import signal
import sys
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from lightfence.demo.geography import PathModel, Place
from lightfence.demo.relay import FrontSpec, Relay

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


def serve(spec: dict[str, Any]) -> None:
    relay = Relay(
        [
            FrontSpec((front["public"][0], int(front["public"][1])),
                      (front["upstream"][0], int(front["upstream"][1])),
                      tuple(_place(hop) for hop in front["hops"]))
            for front in spec["fronts"]
        ],
        {host: _place(place) for host, place in spec["senders"].items()},
        PathModel(**spec["model"]),
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    relay.start()
    print(f"relaying {len(spec['fronts'])} endpoints", flush=True)
    stop.wait()
    relay.close()
    totals = [relay.stats(index) for index in range(len(spec["fronts"]))]
    print(f"relay stopped: forwarded {sum(t.forwarded for t in totals)}, "
          f"dropped {sum(sum(t.dropped.values()) for t in totals)}", flush=True)


def main(argv: Sequence[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m lightfence.demo.relay_process SPEC.json", file=sys.stderr)
        return 2
    serve(json.loads(Path(argv[0]).read_text(encoding="utf-8")))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
