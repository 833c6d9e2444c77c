"""The container image definition and the systemd units, checked by parsing them (there is no
Docker or systemd here): stages, non-root users, health checks, and every command line they
run parsed by the real `lightfence` argument parser. The health-check script runs for real
against a local HTTP server and a bound UDP port."""

from __future__ import annotations

import importlib.util
import json
import shlex
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest

from lightfence.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
UNITS = [ROOT / "deploy" / "lightfence-verifier.service",
         ROOT / "deploy" / "lightfence-landmark.service",
         ROOT / "examples" / "lightfence-agent.service"]


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, comments dropped and continuation lines joined."""
    joined, current = [], ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    assert not current, "dangling line continuation"
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in joined]


def stages(path: Path) -> dict[str, list[tuple[str, str]]]:
    found: dict[str, list[tuple[str, str]]] = {}
    name = ""
    for instruction, args in dockerfile_instructions(path):
        if instruction == "FROM":
            base, _, name = args.partition(" AS ")
            found[name.strip()] = [("FROM", base.strip())]
            name = name.strip()
        else:
            found[name].append((instruction, args))
    return found


def lineage(all_stages: dict[str, list[tuple[str, str]]], name: str) -> list[str]:
    chain = [name]
    while (base := all_stages[chain[-1]][0][1]) in all_stages:
        chain.append(base)
    return chain


def parses_as_lightfence(argv: list[str]) -> str:
    """The subcommand path argv selects; fails the test if the real parser refuses it."""
    args = build_parser().parse_args(argv)
    assert getattr(args, "handler", None) is not None
    return " ".join(str(getattr(args, k)) for k in ("command", "verifier_command",
                                                     "landmark_command", "agent_command")
                    if getattr(args, k, None))


def test_image_is_multi_stage_non_root_with_health_checks() -> None:
    all_stages = stages(DOCKERFILE)
    assert {"build", "runtime", "verifier", "landmark"} <= set(all_stages)
    # The runtime gets the built environment from the build stage, and installs nothing.
    assert any(i == "COPY" and "--from=build" in a for i, a in all_stages["runtime"])
    assert not any(i == "RUN" and "pip install" in a for i, a in all_stages["runtime"])
    expected = {"verifier": "verifier serve", "landmark": "landmark serve"}
    for target, subcommand in expected.items():
        assert lineage(all_stages, target) == [target, "runtime"]
        instructions = dict(all_stages[target])
        user = instructions["USER"].split(":")[0]
        assert user not in ("root", "0") and user == "lightfence"
        health = instructions["HEALTHCHECK"]
        assert "--interval=" in health and "CMD" in health
        check = json.loads(health.split("CMD", 1)[1])
        assert check[:2] == ["python", "/opt/lightfence/healthcheck.py"] and check[2] == target
        entry = json.loads(instructions["ENTRYPOINT"])
        assert entry[0] == "lightfence"
        assert parses_as_lightfence(entry[1:]) == subcommand


def test_every_copied_path_exists_in_the_repository() -> None:
    for instruction, args in dockerfile_instructions(DOCKERFILE):
        if instruction == "COPY" and "--from" not in args:
            *sources, _ = args.split()
            for source in sources:
                assert (ROOT / source).exists(), source


def systemd_unit(path: Path) -> dict[str, list[tuple[str, str]]]:
    sections: dict[str, list[tuple[str, str]]] = {}
    section = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            sections[section] = []
            continue
        key, sep, value = line.partition("=")
        assert sep and section, f"{path.name}: not a key=value line: {line}"
        sections[section].append((key.strip(), value.strip()))
    return sections


@pytest.mark.parametrize("path", UNITS, ids=lambda p: p.name)
def test_systemd_units_run_a_real_command_unprivileged_and_hardened(path: Path) -> None:
    unit = systemd_unit(path)
    assert {"Unit", "Service", "Install"} <= set(unit)
    service = dict(unit["Service"])
    assert service["User"] not in ("root", "0")
    assert service["NoNewPrivileges"] == "yes" and service["ProtectSystem"] == "strict"
    assert service["CapabilityBoundingSet"] == ""
    exec_start = shlex.split(service["ExecStart"])
    assert exec_start[0] == "/opt/lightfence/.venv/bin/lightfence"
    assert parses_as_lightfence(exec_start[1:]).endswith(("serve", "run"))
    if "StateDirectory" in service:  # what it may write is exactly its state directory
        assert service["ReadWritePaths"] == f"/var/lib/{service['StateDirectory']}"
    assert dict(unit["Install"])["WantedBy"] == "multi-user.target"


def _healthcheck() -> ModuleType:
    spec = importlib.util.spec_from_file_location("healthcheck", ROOT / "deploy" /
                                                  "healthcheck.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def healthz_url() -> Iterator[str]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 503)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_verifier_health_check_against_a_real_server(healthz_url: str) -> None:
    check = _healthcheck()
    assert check.main(["verifier", f"{healthz_url}/healthz"]) == 0
    assert check.main(["verifier", f"{healthz_url}/other"]) == 1
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        closed_port = free.getsockname()[1]
    assert check.main(["verifier", f"http://127.0.0.1:{closed_port}/healthz"]) == 1


def test_landmark_health_check_sees_its_udp_port_held(tmp_path: Path) -> None:
    check = _healthcheck()
    config = tmp_path / "landmark.toml"
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as landmark:
        landmark.bind(("127.0.0.1", 0))
        port = landmark.getsockname()[1]
        config.write_text(f'[landmark]\nhost = "127.0.0.1"\nchallenge_port = {port}\n',
                          encoding="utf-8")
        assert check.main(["landmark", str(config)]) == 0
    assert check.main(["landmark", str(config)]) == 1  # released: nobody listens
    assert check.main(["nonsense"]) == 2
