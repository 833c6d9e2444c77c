"""Ingestion benchmark: signed batches over real HTTP into a real verifier subprocess.

    python -m benchmarks.ingest [--records 20000] [--batch 100] [--concurrency 2]
        [--replicas 2] [--postgres | --database-url postgresql://...]
        [--backends sqlite,postgresql]

With `--replicas N` each backend runs with 1 and with N verifier processes on one database
(uploads spread over them as by a load balancer); with `--postgres` (a throw-away cluster,
fsync on, an empty database per run) or `--database-url` PostgreSQL runs beside SQLite, all in
one JSON object (`runs`).

Prints JSON: measurements_per_s (sustained, all signature checks and the database writes
included), post_p50_ms, post_p99_ms, and CPU per measurement of each party on the shared cores:
the verifier processes (all threads; the figure that does not depend on what else the machine
runs), the PostgreSQL server (`--postgres` only: its processes are ours to measure) and this
client; and `reference_verify_us`, the speed of one Ed25519 verification sampled during the timed
uploads (benchmarks/reference.py), with `cost_in_reference_verifies`, the verifier's and the
PostgreSQL server's CPU per measurement in those units: the host's speed varies by up to 2x from
one second to the next, that ratio does not; and `host_busy_share`, the share of the machine's
cores busy over the timed uploads (below 1: the uploads waited, not only computed).

Batches are signed and encoded (whole HTTP requests) before timing starts, so the client's
signing cost is not counted (the landmarks sign in production, not the verifier); the client
sends them over keep-alive connections with raw asyncio streams, the cheapest client we could
write, because it shares the cores with the verifier.

The records are what a landmark uploads: version 2, each naming the task the verifier handed
out (taken through the landmark's own task poll). Before timing, a warm-up batch per landmark
answers every chip's round and the run waits for the verdicts: deciding a round (geometry, the
evidence log) is `benchmarks.fleet`'s subject, and here it would fall once per chip into the
timed uploads, a fixed cost that made the per-measurement figures depend on `--records`.

Defaults: by Little's law the mean POST latency is concurrency × batch / throughput, so at
5,000 measurements/s 2 uploads of 100 records in flight average 40 ms, while 4 × 200 would
average 160 ms whatever the server does.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

from benchmarks.postgres import throwaway_cluster
from benchmarks.reference import ReferenceProbe
from tests.verifier.fleet import Fleet
from tests.verifier.pg_cluster import Cluster

_LANDMARKS = {"FRA": (50.11, 8.68), "BER": (52.52, 13.40), "MUC": (48.14, 11.58),
              "HAM": (53.55, 9.99)}


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_verifier(data_dir: Path, ca_b64: str, port: int, **extra: object
                   ) -> tuple[subprocess.Popen[bytes], str, Path]:
    """Start `lightfence verifier serve` in a subprocess; returns (process, admin token, config)."""
    lines = ["[verifier]", f'data_dir = "{data_dir}"', f"port = {port}",
             f'ca_public_key_b64 = "{ca_b64}"']
    lines += [f"{k} = {json.dumps(v)}" for k, v in extra.items()]
    config = data_dir / "verifier.toml"
    config.write_text("\n".join(lines) + "\n")
    cmd = [sys.executable, "-m", "lightfence"]
    token = subprocess.run([*cmd, "verifier", "token", "--config", str(config), "--role",
                            "admin", "--label", "bench"], check=True, capture_output=True,
                           text=True).stdout.strip()
    with (data_dir / "verifier.log").open("ab") as log:
        proc = subprocess.Popen([*cmd, "verifier", "serve", "--config", str(config)],
                                stdout=log, stderr=log)
    wait_ready(port)
    return proc, token, config


def start_replica(config: Path, port: int, name: str) -> subprocess.Popen[bytes]:
    """Another `lightfence verifier serve` process on the same configuration (and so the same
    database) listening on `port`, logging to `<data_dir>/<name>.log`."""
    log_path = config.parent / f"{name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "lightfence", "verifier", "serve",
                                 "--config", str(config), "--port", str(port)],
                                stdout=log, stderr=log)
    wait_ready(port)
    return proc


def wait_ready(port: int, timeout_s: float = 120.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError("verifier did not start")


def enrol(client: httpx.Client, fleet: Fleet, chips: int) -> dict[str, str]:
    """Register landmarks and chips, make every landmark poll once; returns landmark tokens."""
    client.put("/v1/policies/bench", json={"round_interval_s": 3600, "landmarks_per_round": 4,
                                           "round_timeout_s": 600, "dark_window_s": 86400}
               ).raise_for_status()
    tokens = {}
    for landmark_id, (lat, lon) in _LANDMARKS.items():
        client.post("/v1/landmarks", json=fleet.landmark_body(landmark_id, lat, lon)
                    ).raise_for_status()
        tokens[landmark_id] = client.post("/v1/tokens", json={
            "role": "landmark", "label": landmark_id, "landmark_id": landmark_id}).json()["token"]
        client.get(f"/v1/landmarks/{landmark_id}/tasks?wait_s=0",
                   headers={"Authorization": f"Bearer {tokens[landmark_id]}"})
    for i in range(chips):
        client.post("/v1/chips", json=fleet.chip_body(f"chip-{i}", {"allowed": ["DEU"]},
                                                      policy="bench")).raise_for_status()
    return tokens


def landmark_tasks(base_url: str, tokens: dict[str, str], chips: int
                   ) -> dict[str, dict[str, tuple[str, int]]]:
    """Per landmark, its task for each chip as (round id, task id), from its own task poll."""
    tasks: dict[str, dict[str, tuple[str, int]]] = {}
    deadline = time.monotonic() + 120.0
    for landmark_id, token in tokens.items():
        found: dict[str, tuple[str, int]] = {}
        while len(found) < chips:
            if time.monotonic() > deadline:
                raise RuntimeError(f"landmark {landmark_id} got {len(found)} of {chips} tasks")
            answer = httpx.get(f"{base_url}/v1/landmarks/{landmark_id}/tasks?wait_s=5",
                               headers={"Authorization": f"Bearer {token}"}, timeout=30.0)
            answer.raise_for_status()
            found.update((t["target_id"], (t["round_id"], t["task_id"]))
                         for t in answer.json()["tasks"] if t["target_kind"] == "chip")
        tasks[landmark_id] = found
    return tasks


def signed_body(fleet: Fleet, landmark_id: str, chip_ids: list[str],
                tasks: dict[str, tuple[str, int]]) -> bytes:
    """One signed batch: a version-2 record per chip id, answering that chip's task."""
    records = [fleet.record(landmark_id, chip_id, 3.0, round_id=tasks[chip_id][0],
                            task_id=tasks[chip_id][1]) for chip_id in chip_ids]
    return json.dumps(fleet.batch(landmark_id, records).to_json()).encode()


def warm_up(client: httpx.Client, fleet: Fleet, tokens: dict[str, str],
            tasks: dict[str, dict[str, tuple[str, int]]], chips: int) -> None:
    """Answer every chip's round (one batch per landmark) and wait for every verdict."""
    chip_ids = [f"chip-{i}" for i in range(chips)]
    for landmark_id, token in tokens.items():
        answer = client.post("/v1/measurements",
                             content=signed_body(fleet, landmark_id, chip_ids,
                                                 tasks[landmark_id]),
                             headers={"Authorization": f"Bearer {token}",
                                      "Content-Type": "application/json"})
        answer.raise_for_status()
        if answer.json()["rejected"]:
            raise RuntimeError(f"warm-up upload refused: {answer.text[:300]}")
    deadline = time.monotonic() + 300.0
    while time.monotonic() < deadline:
        pending, cursor = 0, None
        while True:
            page = client.get("/v1/chips", params={"limit": 500, **(
                {"cursor": cursor} if cursor else {})}).json()
            pending += sum(1 for chip in page["items"] if chip["state"] == "unknown")
            cursor = page["next_cursor"]
            if cursor is None:
                break
        if pending == 0:
            return
        time.sleep(0.2)
    raise RuntimeError("the warm-up rounds were not decided within 300 s")


def encode_request(port: int, token: str, body: bytes) -> bytes:
    """One complete HTTP/1.1 POST, encoded before timing starts."""
    head = (f"POST /v1/measurements HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n")
    return head.encode() + body


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(status, body) of one HTTP/1.1 response with a Content-Length (what uvicorn sends)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    length = next((int(line.split(":", 1)[1]) for line in lines[1:]
                   if line.lower().startswith("content-length:")), None)
    if length is None:
        raise RuntimeError(f"response without Content-Length: {head[:300]!r}")
    return status, await reader.readexactly(length)


async def post_all(requests: list[tuple[int, bytes]], concurrency: int
                   ) -> tuple[float, list[float]]:
    """`concurrency` keep-alive connections, each sending its next request when the previous
    answer arrived. Raw asyncio streams rather than an HTTP client library: the client shares
    the 2 cores with the verifier, so its CPU per request should be as small as possible."""
    latencies: list[float] = []
    ports = sorted({port for port, _ in requests})
    # One queue per replica, so each connection keeps to one (as behind a load balancer).
    queues: dict[int, asyncio.Queue[bytes]] = {port: asyncio.Queue() for port in ports}
    for port, request in requests:
        queues[port].put_nowait(request)

    async def worker(port: int) -> None:
        queue = queues[port]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while not queue.empty():
                request = queue.get_nowait()
                started = time.perf_counter()
                writer.write(request)
                status, body = await read_response(reader)
                latencies.append((time.perf_counter() - started) * 1000)
                if status != 200 or json.loads(body)["rejected"]:
                    raise RuntimeError(f"upload refused: {status} {body[:300]!r}")
        finally:
            writer.close()
            await writer.wait_closed()

    started = time.perf_counter()
    await asyncio.gather(*(worker(ports[i % len(ports)])
                           for i in range(max(concurrency, len(ports)))))
    return time.perf_counter() - started, latencies


def process_cpu_s(pid: int, *, reaped_children: bool = False) -> float:
    """User + system CPU seconds of a process, all its threads (Linux /proc); with
    `reaped_children`, plus what its exited and waited-for children used."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])
    if reaped_children:
        ticks += int(fields[13]) + int(fields[14])
    return ticks / os.sysconf("SC_CLK_TCK")


def server_tree_cpu_s(postmaster_pid: int) -> float:
    """CPU seconds of a PostgreSQL server: the postmaster, its live children (backends,
    writers) and the children that already exited."""
    total = process_cpu_s(postmaster_pid, reaped_children=True)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == postmaster_pid:
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):  # a process that just ended
            continue
    return total


def postmaster_pid(cluster: Cluster | None) -> int | None:
    if cluster is None:
        return None
    return int((cluster.directory / "data" / "postmaster.pid").read_text().split()[0])


def run_setup(fleet: Fleet, args: argparse.Namespace, *, database_url: str | None,
              replicas: int, database_pid: int | None = None) -> dict[str, object]:
    """One measured run: `replicas` verifier processes on one database (a fresh SQLite file, or
    `database_url`), the uploads spread over them as a load balancer would. `database_pid`: the
    PostgreSQL postmaster, when its CPU is ours to measure."""
    with tempfile.TemporaryDirectory() as tmp:
        ports = [_free_port() for _ in range(replicas)]
        extra: dict[str, object] = {}  # the default tick (1 s), as deployed
        if database_url is not None:
            extra["database_url"] = database_url
        proc, admin, config = start_verifier(Path(tmp), fleet.ca_b64, ports[0], **extra)
        procs = [proc] + [start_replica(config, port, f"replica-{i + 2}")
                          for i, port in enumerate(ports[1:])]
        try:
            base_url = f"http://127.0.0.1:{ports[0]}"
            with httpx.Client(base_url=base_url, timeout=30.0,
                              headers={"Authorization": f"Bearer {admin}"}) as client:
                tokens = enrol(client, fleet, args.chips)
                tasks = landmark_tasks(base_url, tokens, args.chips)
                warm_up(client, fleet, tokens, tasks, args.chips)
            requests: list[tuple[int, bytes]] = []
            landmark_ids = list(_LANDMARKS)
            per_batch = args.batch
            for n in range(0, args.records, per_batch):
                landmark_id = landmark_ids[(n // per_batch) % len(landmark_ids)]
                chip_ids = [f"chip-{(n + i) % args.chips}"
                            for i in range(min(per_batch, args.records - n))]
                body = signed_body(fleet, landmark_id, chip_ids, tasks[landmark_id])
                port = ports[(n // per_batch) % replicas]
                requests.append((port, encode_request(port, tokens[landmark_id], body)))
            server_cpu_s = sum(process_cpu_s(p.pid) for p in procs)
            database_cpu_s = server_tree_cpu_s(database_pid) if database_pid else 0.0
            client_cpu_s = time.process_time()
            with ReferenceProbe() as probe:
                elapsed_s, latencies = asyncio.run(post_all(requests, args.concurrency))
            server_cpu_s = sum(process_cpu_s(p.pid) for p in procs) - server_cpu_s
            reference = probe.result()
            client_cpu_s = time.process_time() - client_cpu_s - reference.probe_cpu_s
            if database_pid:
                database_cpu_s = server_tree_cpu_s(database_pid) - database_cpu_s
        finally:
            for p in procs:
                p.terminate()
            for p in procs:
                p.wait(10)
    latencies.sort()
    # Verifier and PostgreSQL CPU per measurement in reference verifications: the figure that
    # holds from one run to the next on a host whose speed does not (benchmarks/reference.py).
    cost_us = (server_cpu_s + database_cpu_s) / args.records * 1e6
    cost_verifies = cost_us / reference.verify_us_median
    return {
        "backend": "postgresql" if database_url else "sqlite", "replicas": replicas,
        "measurements_per_s": round(args.records / elapsed_s, 1),
        "post_p50_ms": round(statistics.median(latencies), 2),
        "post_p99_ms": round(latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], 2),
        "server_cpu_us_per_measurement": round(server_cpu_s / args.records * 1e6, 1),
        "database_cpu_us_per_measurement": (round(database_cpu_s / args.records * 1e6, 1)
                                            if database_pid else None),
        "client_cpu_us_per_measurement": round(client_cpu_s / args.records * 1e6, 1),
        "client_cpu_share": round(client_cpu_s / (client_cpu_s + server_cpu_s), 3),
        "cost_in_reference_verifies": round(cost_verifies, 2), **reference.to_json(),
        "elapsed_s": round(elapsed_s, 2), "load_avg_1min": round(os.getloadavg()[0], 2),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    # One upload in flight per connection is how a landmark uploads (its sink sends the next
    # batch when the previous one was acknowledged); 2 puts two landmarks' uploads in flight.
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--chips", type=int, default=50)
    parser.add_argument("--postgres", action="store_true",
                        help="start a throw-away PostgreSQL cluster (fsync on) for the run")
    parser.add_argument("--database-url", default=None,
                        help="also run on this PostgreSQL database (use a throw-away one)")
    parser.add_argument("--replicas", type=int, default=1,
                        help="N > 1: also run N replicas on each backend, beside 1")
    parser.add_argument("--backends", default="sqlite,postgresql",
                        help="comma-separated subset of sqlite,postgresql to run")
    args = parser.parse_args(argv)
    fleet = Fleet.create()
    counts = sorted({1, max(1, args.replicas)})
    runs: list[dict[str, object]] = []
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(throwaway_cluster()) if args.postgres else None
        for backend in ("sqlite", "postgresql"):
            if backend not in args.backends.split(","):
                continue
            for n in counts:
                if backend == "sqlite":
                    runs.append(run_setup(fleet, args, database_url=None, replicas=n))
                elif cluster is not None:  # an empty database per run
                    runs.append(run_setup(fleet, args, database_url=cluster.fresh_url(),
                                          replicas=n, database_pid=postmaster_pid(cluster)))
                elif args.database_url:
                    runs.append(run_setup(fleet, args, database_url=args.database_url,
                                          replicas=n))
    if len(runs) == 1:
        print(json.dumps({**runs[0], "records": args.records, "batch_size": args.batch,
                          "concurrency": args.concurrency, "cpu_count": os.cpu_count()}))
    else:
        print(json.dumps({"records": args.records, "batch_size": args.batch,
                          "concurrency": args.concurrency, "cpu_count": os.cpu_count(),
                          "runs": runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
