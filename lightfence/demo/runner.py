"""Runs the demo: a verifier, landmarks, agents and delay relays, all real, all on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import sqlite3
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from keystore.key_files import load_signer
from lightfence.demo.geography import PathModel
from lightfence.demo.processes import (
    LANDMARK_PRIORITY,
    PATH_PRIORITY,
    VERIFIER_PRIORITY,
    Child,
    lightfence_argv,
    stop_all,
)
from lightfence.demo.relay_process import write_spec
from lightfence.demo.scenario import Scenario
from lightfence.demo.world import (
    AGENT_PORT,
    RESPONDER_PORT,
    AgentNode,
    LandmarkNode,
    World,
    build_world,
    write_token,
)
from protocol.records import MeasurementRecord, sign_batch
from verifier.auth import issue_token
from verifier.config import load_config
from verifier.store import SqliteStore

logger = logging.getLogger(__name__)


class DemoError(Exception):
    """The demo could not bring its world up; the message says which part and why."""


@dataclass(frozen=True, slots=True)
class DemoOptions:
    scenario: Scenario
    workdir: Path
    duration_s: float
    fast: bool = False  # shorter rounds and windows, for the end-to-end test


@dataclass(slots=True)
class Snapshot:
    """What the API says right now; the view renders it and the summary is built from it."""

    elapsed_s: float = 0.0
    chips: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    landmarks: list[dict[str, Any]] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)
    # chip id -> verdict -> rounds, over the whole run (filled in at the end)
    verdict_counts: dict[str, dict[str, int]] = field(default_factory=dict)
    first_round_unix_ns: dict[str, int] = field(default_factory=dict)  # chip id -> first verdict
    events: list[str] = field(default_factory=list)
    dashboard_url: str = ""
    # The machine's 1-minute load average, once a second while the scenario runs: the figures
    # depend on it (everything shares the same cores), so the summary reports it beside them.
    load_1m: list[float] = field(default_factory=list)


@dataclass(slots=True)
class _Running:
    world: World
    base_url: str
    admin: httpx.AsyncClient
    children: list[Child] = field(default_factory=list)
    agents: dict[str, Child] = field(default_factory=dict)


# Every node here sits in a data centre (chips in theirs, landmarks in carrier hotels of the same
# metros): 0.1 ms of access and 0.1 ms mean jitter each way, not a home connection's last mile.
DATA_CENTRE_PATHS = PathModel(last_mile_ms=0.1, jitter_mean_ms=0.1)


def _free_tcp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _policy(fast: bool) -> dict[str, float | int]:
    return {
        "round_interval_s": 2.0 if fast else 3.0,
        "landmarks_per_round": 8,
        "round_timeout_s": 2.5,
        "dark_window_s": 8.0 if fast else 10.0,
    }


async def _wait_healthy(client: httpx.AsyncClient, verifier: Child, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if not verifier.alive():
            raise DemoError(f"the verifier exited at start; see {verifier.log_path}")
        with contextlib.suppress(httpx.HTTPError):
            if (await client.get("/healthz")).status_code == 200:
                return
        await asyncio.sleep(0.2)
    raise DemoError(f"the verifier did not answer /healthz in {timeout_s:.0f} s")


async def _checked(response_coro: Any) -> Any:
    response: httpx.Response = await response_coro
    if response.status_code >= 300:
        raise DemoError(
            f"{response.request.method} {response.request.url.path} -> "
            f"{response.status_code}: {response.text[:300]}"
        )
    return response.json()


async def _wait_landmarks_alive(client: httpx.AsyncClient, count: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.HTTPError, ValueError, KeyError):
            items = (await client.get("/v1/landmarks")).json()["items"]
            if sum(item["health"] != "unknown" for item in items) >= count:
                return
        await asyncio.sleep(0.5)
    logger.warning("not every landmark reported within %.0f s; enrolling chips anyway", timeout_s)


async def _register_landmarks(running: _Running, options: DemoOptions) -> None:
    world, admin = running.world, running.admin
    await _checked(admin.put("/v1/policies/default", json=_policy(options.fast)))
    for node in world.landmarks:
        cert = json.loads(world.landmark_certificate_path(node.spec.landmark_id).read_text())
        await _checked(admin.post(
            "/v1/landmarks",
            json={"certificate": cert, "host": node.front_host, "port": RESPONDER_PORT},
        ))
        token = await _checked(admin.post("/v1/tokens", json={
            "role": "landmark", "label": node.spec.landmark_id,
            "landmark_id": node.spec.landmark_id,
        }))
        write_token(node.token_path, token["token"])


async def _register_chips(running: _Running) -> None:
    world, admin = running.world, running.admin
    for agent in world.agents:
        for chip in agent.chips:
            cert = json.loads(world.chip_certificate_path(chip.chip_id).read_text())
            await _checked(admin.post("/v1/chips", json={
                "certificate": cert, "owner": chip.owner, "host": agent.front_host,
                "port": AGENT_PORT, "licence": chip.licence, "policy": "default",
            }))


def _start_relays(running: _Running) -> None:
    world = running.world
    senders = {node.bind_host: node.spec.place for node in world.landmarks}
    fronts = [
        ((a.front_host, AGENT_PORT), (a.bind_host, AGENT_PORT), a.endpoint_hops)
        for a in world.agents
    ] + [
        ((n.front_host, RESPONDER_PORT), (n.bind_host, RESPONDER_PORT), (n.spec.place,))
        for n in world.landmarks
    ]
    spec_path = world.root / "etc" / "relays.json"
    write_spec(spec_path, fronts, senders, DATA_CENTRE_PATHS)
    running.children.append(Child(
        "relays", [sys.executable, "-m", "lightfence.demo.relay_process", str(spec_path)],
        world.root / "var" / "relays.log", realtime_priority=PATH_PRIORITY,
    ))


def _start_agent(running: _Running, agent: AgentNode) -> None:
    log = running.world.root / "var" / f"agent-{agent.name}.log"
    child = Child(f"agent {agent.name}",
                  lightfence_argv("--log-level", "INFO", "agent", "run", "--config",
                                  str(agent.config_path)),
                  log, realtime_priority=PATH_PRIORITY)
    running.children.append(child)
    for chip in agent.chips:
        running.agents[chip.chip_id] = child


def _start_landmark(running: _Running, node: LandmarkNode) -> None:
    log = running.world.root / "var" / f"{node.spec.landmark_id}.log"
    running.children.append(Child(
        f"landmark {node.spec.landmark_id}",
        lightfence_argv("--log-level", "INFO", "landmark", "serve", "--config",
                        str(node.config_path)),
        log, realtime_priority=LANDMARK_PRIORITY,
    ))


async def replay_a_record(running: _Running) -> str | None:
    """Act as an attacker holding a landmark's upload credentials: re-send an accepted
    measurement under a new batch id. The verifier must refuse it and raise `replay_detected`."""
    for node in running.world.landmarks:
        if not node.spool_path.exists():
            continue
        uri = f"file:{node.spool_path}?mode=ro"
        try:
            with contextlib.closing(sqlite3.connect(uri, uri=True)) as db:
                bodies = [row[0] for row in db.execute(
                    "SELECT body FROM batches WHERE delivered = 1 ORDER BY seq LIMIT 50")]
        except sqlite3.Error:  # the landmark has not created its spool's tables yet
            continue
        # The first batches may hold only mesh records (chips are enrolled after the fleet).
        chip_records = [
            record
            for body in bodies
            for record in map(MeasurementRecord.from_json, json.loads(body)["records"])
            if record.target_kind == "chip"
        ]
        if not chip_records:
            continue
        batch = sign_batch(load_signer(node.key_path), uuid.uuid4().hex, node.spec.landmark_id,
                           (chip_records[0],))
        token = node.token_path.read_text().strip()
        response = await running.admin.post(
            "/v1/measurements", json=batch.to_json(),
            headers={"Authorization": f"Bearer {token}"},
        )
        reasons = [item["reason"] for item in response.json().get("rejected", [])]
        return (f"replayed {node.spec.landmark_id}'s record of {chip_records[0].target_id}: "
                f"HTTP {response.status_code}, rejected {reasons}")
    return None


async def _poll(running: _Running, snapshot: Snapshot) -> None:
    admin = running.admin
    with contextlib.suppress(httpx.HTTPError, ValueError):
        snapshot.chips = (await admin.get("/v1/chips")).json()["items"]
        snapshot.alerts = (await admin.get("/v1/alerts", params={"limit": 100})).json()["items"]
        snapshot.landmarks = (await admin.get("/v1/landmarks")).json()["items"]
        snapshot.stats = (await admin.get("/v1/stats")).json()


async def run_demo(options: DemoOptions, on_update: Callable[[Snapshot], None]) -> Snapshot:
    """Bring the world up, run the scenario for `duration_s`, tear everything down."""
    port = _free_tcp_port()
    world = build_world(options.scenario, options.workdir, port, fast=options.fast)
    config = load_config(world.verifier_config_path)
    config.data_dir.mkdir(parents=True, exist_ok=True)
    store = SqliteStore(config.db_path, config.sqlite_synchronous)
    try:
        _, admin_token = issue_token(store, role="admin", label="demo-operator",
                                     landmark_id=None, now_unix_ns=time.time_ns())
        _, dashboard_token = issue_token(store, role="dashboard", label="demo-dashboard",
                                         landmark_id=None, now_unix_ns=time.time_ns())
    finally:
        store.close()
    base_url = f"http://127.0.0.1:{port}"
    snapshot = Snapshot(dashboard_url=f"{base_url}/?token={dashboard_token}")
    admin = httpx.AsyncClient(base_url=base_url, timeout=10.0,
                              headers={"Authorization": f"Bearer {admin_token}"})
    running = _Running(world, base_url, admin)
    try:
        verifier = Child("verifier", lightfence_argv(
            "--log-level", "INFO", "verifier", "serve", "--config",
            str(world.verifier_config_path)), world.root / "var" / "verifier.log",
            realtime_priority=VERIFIER_PRIORITY)
        running.children.append(verifier)
        await _wait_healthy(admin, verifier, timeout_s=60.0)
        await _register_landmarks(running, options)
        _start_relays(running)
        for agent in world.agents:
            _start_agent(running, agent)
        for node in world.landmarks:
            _start_landmark(running, node)
        # Chips are enrolled once the fleet is up: their rounds (and dark windows) start then,
        # not while 40 processes are still importing on two cores.
        await _wait_landmarks_alive(admin, len(world.landmarks), timeout_s=90.0)
        await _register_chips(running)
        timed = [c for c in running.children if c.name != "verifier"]
        fast = sum(c.realtime() for c in timed)
        snapshot.events.append(
            f"{fast} of {len(timed)} timed processes (relays, agents, landmarks) run with "
            "real-time scheduling" + ("" if fast == len(timed) else
                                      " (the rest lack the privilege and run normally)"))
        await _scenario_loop(running, options, snapshot, on_update)
    finally:
        # Landmarks first, while the verifier still takes their last batches; then the rest.
        landmarks = [child for child in running.children if child.name.startswith("landmark ")]
        await asyncio.to_thread(stop_all, landmarks)
        await asyncio.to_thread(stop_all, [c for c in running.children if c not in landmarks])
        await admin.aclose()
    return snapshot


async def _scenario_loop(
    running: _Running, options: DemoOptions, snapshot: Snapshot,
    on_update: Callable[[Snapshot], None],
) -> None:
    started = time.monotonic()
    replay_at_s = options.duration_s * 0.4
    replayed = False
    darkened: set[str] = set()
    while (elapsed_s := time.monotonic() - started) < options.duration_s:
        snapshot.elapsed_s = elapsed_s
        for agent in running.world.agents:
            for chip in agent.chips:
                after_s = chip.goes_dark_after_s
                if after_s is not None and elapsed_s >= after_s and chip.chip_id not in darkened:
                    running.agents[chip.chip_id].terminate()
                    darkened.add(chip.chip_id)
                    snapshot.events.append(f"{elapsed_s:5.1f}s  agent of {chip.chip_id} stopped "
                                           "(the chip goes dark)")
        if not replayed and elapsed_s >= replay_at_s:
            outcome = await replay_a_record(running)
            if outcome is not None:
                replayed = True
                snapshot.events.append(f"{elapsed_s:5.1f}s  {outcome}")
        await _poll(running, snapshot)
        snapshot.load_1m.append(os.getloadavg()[0])
        on_update(snapshot)
        await asyncio.sleep(1.0)
    snapshot.elapsed_s = time.monotonic() - started
    await _poll(running, snapshot)
    await _count_verdicts(running, snapshot)
    on_update(snapshot)


async def _count_verdicts(running: _Running, snapshot: Snapshot) -> None:
    """Every round's verdict per chip, following the history's cursor to its end."""
    for chip in snapshot.chips:
        counts: dict[str, int] = {}
        params: dict[str, str | int] = {"limit": 200}
        while True:
            page = await _checked(
                running.admin.get(f"/v1/chips/{chip['chip_id']}/verdicts", params=params))
            for item in page["items"]:
                counts[item["verdict"]] = counts.get(item["verdict"], 0) + 1
                first = snapshot.first_round_unix_ns.get(chip["chip_id"])
                if first is None or item["created_unix_ns"] < first:
                    snapshot.first_round_unix_ns[chip["chip_id"]] = item["created_unix_ns"]
            if not page.get("next_cursor"):
                break
            params["cursor"] = page["next_cursor"]
        snapshot.verdict_counts[chip["chip_id"]] = counts
