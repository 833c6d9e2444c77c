"""Lays out the demo's world on disk: keys, certificates, configs and loopback addresses.

Every node binds its own loopback address (127.B.x.y, with B chosen per run so that two demos
never collide), which is how the delay relay recognises who is sending.
"""

from __future__ import annotations

import json
import os
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from keystore.cert_files import write_certificate
from keystore.key_files import generate_key_file
from lightfence.demo.geography import Place
from lightfence.demo.scenario import ChipSpec, LandmarkSpec, Scenario
from protocol.certs import issue_chip_certificate, issue_landmark_certificate
from protocol.codec import to_b64
from protocol.keys import SoftwareSigner

CHALLENGE_PORT = 7400
RESPONDER_PORT = 7401
AGENT_PORT = 7500
CERT_VALIDITY_S = 7 * 86_400


@dataclass(frozen=True, slots=True)
class LandmarkNode:
    spec: LandmarkSpec
    bind_host: str  # its challenge socket and responder bind here
    front_host: str  # the relay front peers probe (registered with the verifier)
    config_path: Path
    key_path: Path
    spool_path: Path
    token_path: Path


@dataclass(frozen=True, slots=True)
class AgentNode:
    """One agent process per host, serving every chip of that host (as one server serves its
    GPUs): fewer processes competing for the cores that time every round trip."""

    name: str
    chips: tuple[ChipSpec, ...]
    bind_host: str
    front_host: str  # the relay front landmarks challenge (registered with the verifier)
    config_path: Path

    @property
    def endpoint_hops(self) -> tuple[Place, ...]:
        return self.chips[0].endpoint_hops


@dataclass(frozen=True, slots=True)
class World:
    root: Path
    octet: int
    ca: SoftwareSigner
    landmarks: tuple[LandmarkNode, ...]
    agents: tuple[AgentNode, ...]
    verifier_config_path: Path
    verifier_data_dir: Path

    def chip_certificate_path(self, chip_id: str) -> Path:
        return self.root / "certs" / "chips" / f"{chip_id}.json"

    def landmark_certificate_path(self, landmark_id: str) -> Path:
        return self.root / "certs" / "landmarks" / f"{landmark_id}.json"


def _write_toml(path: Path, text: str) -> None:
    path.write_text(text, encoding="utf-8")


def _q(value: object) -> str:
    """A TOML basic string (JSON string escaping is a subset TOML accepts)."""
    return json.dumps(str(value))


def build_world(scenario: Scenario, root: Path, verifier_port: int, *, fast: bool) -> World:
    octet = random.randint(30, 250)
    now_s = int(time.time())
    for sub in ("keys/landmarks", "keys/chips", "certs/chips", "certs/landmarks", "var", "etc"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    ca = generate_key_file(root / "keys" / "ca.key")
    ca_pub = root / "keys" / "ca.pub.json"
    ca_pub.write_text(json.dumps({"public_key_b64": to_b64(ca.public_key())}), encoding="utf-8")

    for chip in scenario.chips:
        signer = generate_key_file(root / "keys" / "chips" / f"{chip.chip_id}.key")
        cert = issue_chip_certificate(
            ca, chip_id=chip.chip_id, public_key=signer.public_key(), model="H100-SXM (simulated)",
            serial=f"SN-{chip.chip_id.upper()}", not_before_unix_s=now_s - 60,
            not_after_unix_s=now_s + CERT_VALIDITY_S,
        )
        write_certificate(root / "certs" / "chips" / f"{chip.chip_id}.json", cert)

    landmarks: list[LandmarkNode] = []
    for index, spec in enumerate(scenario.landmarks, start=1):
        key_path = root / "keys" / "landmarks" / f"{spec.landmark_id}.key"
        signer = generate_key_file(key_path)
        claimed = spec.claimed_place
        landmark_cert = issue_landmark_certificate(
            ca, landmark_id=spec.landmark_id, public_key=signer.public_key(),
            lat_deg=claimed.lat_deg, lon_deg=claimed.lon_deg, not_before_unix_s=now_s - 60,
            not_after_unix_s=now_s + CERT_VALIDITY_S,
        )
        write_certificate(
            root / "certs" / "landmarks" / f"{spec.landmark_id}.json", landmark_cert
        )
        node = LandmarkNode(
            spec=spec,
            bind_host=f"127.{octet}.10.{index}",
            front_host=f"127.{octet}.11.{index}",
            config_path=root / "etc" / f"{spec.landmark_id}.toml",
            key_path=key_path,
            spool_path=root / "var" / spec.landmark_id / "spool.sqlite3",
            token_path=root / "keys" / "landmarks" / f"{spec.landmark_id}.token",
        )
        landmarks.append(node)

    hosts: dict[tuple[object, ...], list[ChipSpec]] = {}
    for chip in scenario.chips:
        hosts.setdefault(chip.host_key, []).append(chip)
    agents: list[AgentNode] = []
    for index, chips in enumerate(hosts.values(), start=1):
        name = f"host-{index:02d}"
        agent = AgentNode(
            name=name,
            chips=tuple(chips),
            bind_host=f"127.{octet}.20.{index}",
            front_host=f"127.{octet}.21.{index}",
            config_path=root / "etc" / f"agent-{name}.toml",
        )
        chip_ids = ", ".join(_q(chip.chip_id) for chip in chips)
        _write_toml(
            agent.config_path,
            "[agent]\n"
            f"host = {_q(agent.bind_host)}\n"
            f"port = {AGENT_PORT}\n"
            f"ca_public_key = {_q(ca_pub)}\n"
            f"landmark_certs_dir = {_q(root / 'certs' / 'landmarks')}\n"
            f"key_dir = {_q(root / 'keys' / 'chips')}\n"
            f"software_chips = [{chip_ids}]\n"
            "stats_interval_s = 30.0\n",
        )
        agents.append(agent)
    for node in landmarks:
        _write_landmark_config(node, root, verifier_port, _cross_connects(node, agents),
                               fast=fast)

    data_dir = root / "var" / "verifier"
    verifier_config = root / "etc" / "verifier.toml"
    _write_toml(
        verifier_config,
        "[verifier]\n"
        f"data_dir = {_q(data_dir)}\n"
        'host = "127.0.0.1"\n'
        f"port = {verifier_port}\n"
        f"ca_public_key_b64 = {_q(to_b64(ca.public_key()))}\n"
        f"tick_s = {0.25 if fast else 0.5}\n"
        f"mesh_interval_s = {3.0 if fast else 6.0}\n"
        f"calibration_refresh_s = {5.0 if fast else 10.0}\n"
        "landmark_dead_after_s = 20.0\n"
        "task_ttl_s = 6.0\n"
        # The demo's chips hold key files (software): accepted here, so its verdicts can be
        # `verified`, and every one says "software key". Production configs require more.
        'min_key_protection = "software"\n',
    )
    return World(root, octet, ca, tuple(landmarks), tuple(agents), verifier_config, data_dir)


def _cross_connects(node: LandmarkNode, agents: Sequence[AgentNode]) -> list[AgentNode]:
    """The hosts a co-located landmark reaches over its own link: those in its data centre.
    A chip reached through a relay host is not (its challenges go wherever the relay is)."""
    if not node.spec.colocated:
        return []
    here = (node.spec.place.lat_deg, node.spec.place.lon_deg)
    return [agent for agent in agents
            if [(hop.lat_deg, hop.lon_deg) for hop in agent.endpoint_hops] == [here]]


def _write_landmark_config(
    node: LandmarkNode, root: Path, verifier_port: int, cross_connects: Sequence[AgentNode],
    *, fast: bool,
) -> None:
    (root / "var" / node.spec.landmark_id).mkdir(parents=True, exist_ok=True)
    # Chips in the landmark's own data centre are probed at their own address over its link,
    # not through the emulated network's front (which would add two relay hops of delay).
    links = "".join(
        f"\n[[cross_connect]]\npublic = {_q(agent.front_host)}\nlocal = {_q(agent.bind_host)}\n"
        for agent in cross_connects
    )
    _write_toml(
        node.config_path,
        "[landmark]\n"
        f"id = {_q(node.spec.landmark_id)}\n"
        f"key_file = {_q(node.key_path)}\n"
        f"ca_public_key = {_q(root / 'keys' / 'ca.pub.json')}\n"
        f"chip_certs_dir = {_q(root / 'certs' / 'chips')}\n"
        f"landmark_certs_dir = {_q(root / 'certs' / 'landmarks')}\n"
        f"spool_path = {_q(node.spool_path)}\n"
        f"outbox_dir = {_q(root / 'var' / node.spec.landmark_id / 'outbox')}\n"
        f"host = {_q(node.bind_host)}\n"
        f"challenge_port = {CHALLENGE_PORT}\n"
        f"responder_port = {RESPONDER_PORT}\n"
        "\n[schedule]\n"
        "timeout_s = 1.5\n"
        "max_attempts = 3\n"
        "challenge_lifetime_s = 5.0\n"
        "probes_per_task = 5\n"
        "probe_spacing_s = 0.2\n"
        "\n[batch]\n"
        f"interval_s = {0.25 if fast else 0.5}\n"
        "\n[verifier]\n"
        f'url = "http://127.0.0.1:{verifier_port}"\n'
        f"token_file = {_q(node.token_path)}\n"
        "poll_wait_s = 5.0\n" + links,
    )


def write_token(path: Path, token: str) -> None:
    """Bearer tokens are secrets: 0600 from the first byte, like key files."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(token + "\n")
