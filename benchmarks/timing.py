"""Loopback timing benchmark of the measurement plane: `python -m benchmarks.timing`.

Prints one JSON object. Every figure comes from this run, on this machine, over loopback:

- raw_echo_median_us: a plain blocking UDP echo between two processes, the floor;
- challenge_rtt_median_us / _p99_us: the real landmark `Prober` (kernel receive timestamps) against
  the real agent `ResponderServer` in another process, one measurement at a time; the RTT is the
  timed REVEAL → RESPONSE step of the commit-reveal exchange (docs/protocol.md);
- challenge_rtt_p99_loaded_us: the same while the prober drives ≥ 2,000 challenges/s spread over
  1,000 simulated chips (achieved rate reported as loaded_rate_per_s);
- agent_processing_median_us: inside the agent, from `recvfrom` returning to `sendto` returning,
  for the timed REVEAL (commitment check + chip signature; the landmark signature was checked
  when the CHALLENGE arrived, before the clock started);
- asyncio_dgram_ / uvloop_challenge_rtt_median_us: the same challenges answered by the same
  `ResponderCore` behind asyncio-dgram and behind a uvloop DatagramProtocol, for the design choice.
"""

from __future__ import annotations

import asyncio
import json
import multiprocessing
import multiprocessing.connection
import queue
import socket
import statistics
import sys
import time
from typing import Any

from landmark_node.prober import Prober
from protocol.challenger import ChallengerConfig, ChallengerCore, Target
from protocol.keys import SoftwareSigner
from protocol.records import NO_TASK_ID, MeasurementRecord
from protocol.responder import ResponderConfig, ResponderCore
from udp_io.responder_server import ResponderServer

CHIPS = 1_000
LANDMARK_SEED = bytes(range(32))
RAW_ROUNDS = 3_000
IDLE_ROUNDS = 1_500
VARIANT_ROUNDS = 600
LOADED_RATE_PER_S = 2_500.0
LOADED_SECONDS = 5.0


def _chips() -> dict[str, SoftwareSigner]:
    # Deterministic seeds so the benchmark process can know every chip's public key.
    return {f"sim-{i}": SoftwareSigner(i.to_bytes(32, "big")) for i in range(CHIPS)}


def _core() -> ResponderCore:
    landmark = SoftwareSigner(LANDMARK_SEED)
    # The loaded phase comes from one source: lift the per-source limit above the offered rate.
    config = ResponderConfig(rate_per_s=100_000.0, burst=10_000.0)
    return ResponderCore(_chips(), {"lm-bench": landmark.public_key()}, config)


def _raw_echo(conn: multiprocessing.connection.Connection) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    conn.send(sock.getsockname())
    while True:
        data, source = sock.recvfrom(2048)
        sock.sendto(data, source)


def _agent(conn: multiprocessing.connection.Connection) -> None:
    server = ResponderServer(_core(), "127.0.0.1", 0)
    server.start()
    conn.send(server.address)
    conn.recv()  # "stop"
    samples = list(server.processing_ns)
    counters = server.counters()
    server.stop()
    conn.send((samples, counters))


def _asyncio_dgram_agent(conn: multiprocessing.connection.Connection) -> None:
    import asyncio_dgram

    core = _core()

    async def serve() -> None:
        stream = await asyncio_dgram.bind(("127.0.0.1", 0))
        conn.send(tuple(stream.sockname)[:2])
        while True:
            data, source = await stream.recv()
            host = str(source[0])  # type: ignore[index]
            reply = core.handle_datagram(data, host, time.time_ns())
            if reply is not None:
                await stream.send(reply, source)

    asyncio.run(serve())


def _uvloop_agent(conn: multiprocessing.connection.Connection) -> None:
    import uvloop

    core = _core()

    class Responder(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.transport: Any = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            reply = core.handle_datagram(data, addr[0], time.time_ns())
            if reply is not None:
                self.transport.sendto(reply, addr)

    async def serve() -> None:
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(Responder, local_addr=("127.0.0.1", 0))
        conn.send(transport.get_extra_info("sockname"))
        await asyncio.Event().wait()

    uvloop.run(serve())


def _spawn(target: Any) -> tuple[Any, multiprocessing.connection.Connection, tuple[str, int]]:
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=target, args=(child,), daemon=True)
    process.start()
    address: tuple[str, int] = parent.recv()
    return process, parent, address


def _percentile_us(values_ns: list[int], fraction: float) -> float:
    ordered = sorted(values_ns)
    index = min(len(ordered) - 1, int(fraction * len(ordered)))
    return round(ordered[index] / 1000, 1)


def _median_us(values_ns: list[int]) -> float:
    return round(statistics.median(values_ns) / 1000, 1)


def raw_echo_ns(address: tuple[str, int]) -> list[int]:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    payload = bytes(128)
    samples = []
    for _ in range(RAW_ROUNDS):
        started = time.perf_counter_ns()
        sock.sendto(payload, address)
        sock.recv(2048)
        samples.append(time.perf_counter_ns() - started)
    sock.close()
    return samples


class Landmark:
    def __init__(self) -> None:
        self.records: queue.SimpleQueue[MeasurementRecord] = queue.SimpleQueue()
        core = ChallengerCore(
            "lm-bench", SoftwareSigner(LANDMARK_SEED), ChallengerConfig(max_attempts=1)
        )
        self.prober = Prober(
            core, "127.0.0.1", 0, self.records.put, max_rate_per_s=LOADED_RATE_PER_S
        )
        self.prober.start()
        self.keys = {chip_id: s.public_key() for chip_id, s in _chips().items()}

    def targets(self, address: tuple[str, int], count: int) -> list[Target]:
        return [
            Target(
                "chip", f"sim-{i % CHIPS}", address[0], address[1], self.keys[f"sim-{i % CHIPS}"],
                "bench", NO_TASK_ID,
            )
            for i in range(count)
        ]

    def sequential(self, address: tuple[str, int], rounds: int) -> list[MeasurementRecord]:
        records: list[MeasurementRecord] = []
        for target in self.targets(address, rounds):
            self.prober.submit([target])
            records.append(self.records.get(timeout=5))
        return records

    def loaded(self, address: tuple[str, int]) -> tuple[list[MeasurementRecord], float]:
        count = int(LOADED_RATE_PER_S * LOADED_SECONDS)
        measured_before = self.prober.core.counters["measured"]
        started = time.monotonic()
        self.prober.submit(self.targets(address, count))
        records: list[MeasurementRecord] = []
        deadline = started + LOADED_SECONDS * 3
        while len(records) < count and time.monotonic() < deadline:
            try:
                records.append(self.records.get(timeout=1))
            except queue.Empty:
                break
        elapsed_s = time.monotonic() - started
        measured = self.prober.core.counters["measured"] - measured_before
        return records, measured / elapsed_s


def main() -> int:
    result: dict[str, Any] = {}
    process, conn, address = _spawn(_raw_echo)
    raw = raw_echo_ns(address)
    process.kill()
    result["raw_echo_median_us"] = _median_us(raw)

    landmark = Landmark()
    process, conn, address = _spawn(_agent)
    landmark.sequential(address, 100)  # warm-up: page in code paths
    idle = landmark.sequential(address, IDLE_ROUNDS)
    loaded, rate_per_s = landmark.loaded(address)
    conn.send("stop")
    samples, counters = conn.recv()
    process.join(timeout=5)
    idle_ns = [r.rtt_ns for r in idle]
    loaded_ns = [r.rtt_ns for r in loaded]
    result.update(
        challenge_rtt_median_us=_median_us(idle_ns),
        challenge_rtt_p99_us=_percentile_us(idle_ns, 0.99),
        challenge_rtt_p99_loaded_us=_percentile_us(loaded_ns, 0.99),
        challenge_rtt_median_loaded_us=_median_us(loaded_ns),
        loaded_rate_per_s=round(rate_per_s),
        loaded_challenges=len(loaded_ns),
        loaded_chips=CHIPS,
        agent_processing_median_us=_median_us(samples),
        clock_sources=sorted({r.clock_source for r in idle + loaded}),
        agent_dropped=sum(v for k, v in counters.items() if k.startswith("dropped_")),
    )
    for name, target in (("asyncio_dgram", _asyncio_dgram_agent), ("uvloop", _uvloop_agent)):
        process, conn, address = _spawn(target)
        landmark.sequential(address, 50)
        variant = landmark.sequential(address, VARIANT_ROUNDS)
        process.kill()
        result[f"{name}_challenge_rtt_median_us"] = _median_us([r.rtt_ns for r in variant])
    landmark.prober.stop()
    result["challenge_overhead_over_raw_us"] = round(
        result["challenge_rtt_median_us"] - result["raw_echo_median_us"], 1
    )
    result["goal_overhead_le_60us"] = result["challenge_overhead_over_raw_us"] <= 60
    result["goal_loaded_p99_le_idle_p99_plus_100us"] = (
        result["challenge_rtt_p99_loaded_us"] <= result["challenge_rtt_p99_us"] + 100
    )
    json.dump(result, sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
