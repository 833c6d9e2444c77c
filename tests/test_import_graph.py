"""The dependency rules of docs/CONTRACTS.md ("Dependency rules"), checked on the import graph.

Every import statement of every module of a project package counts, wherever it stands (module
level, inside a function, under ``if TYPE_CHECKING``): a deferred import is still a dependency.
The imports are read from the syntax tree, so nothing is executed. A project package is a
top-level folder with an ``__init__.py``, so a new package is checked the day it appears. Purity
of protocol/ (no sockets, clocks or file I/O) is checked on the same syntax trees by
tests/protocol/test_purity.py.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# The pure layer: wire format, evidence format, geometry. It imports no service.
PURE = frozenset({"geo", "protocol"})
# Not part of the product: the benchmarks and the simulator (an optional extra) may import
# product code, never the other way round.
NOT_PRODUCT = frozenset({"benchmarks", "sim", "tests"})


def project_packages() -> frozenset[str]:
    return frozenset(path.parent.name for path in ROOT.glob("*/__init__.py"))


def imports_of(source: str, package: str) -> list[tuple[int, str]]:
    """(line, top-level module) of every import in ``source``, a module of ``package``; a
    relative import is of ``package`` itself."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name.split(".")[0]) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            top = package if node.level else (node.module or "").split(".")[0]
            found.append((node.lineno, top))
    return found


def project_imports(package: str) -> dict[str, list[str]]:
    """The project packages ``package`` imports (itself aside), each with the places, as
    'path:line'."""
    projects = project_packages()
    places: dict[str, list[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        where = path.relative_to(ROOT)
        for line, module in imports_of(path.read_text(encoding="utf-8"), package):
            if module in projects and module != package:
                places.setdefault(module, []).append(f"{where}:{line}")
    return places


def violations(package: str, forbidden: Iterable[str]) -> dict[str, list[str]]:
    imported = project_imports(package)
    return {name: imported[name] for name in sorted(forbidden) if name in imported}


def test_the_project_packages_are_found() -> None:
    assert {"geo", "protocol", "audit", "verifier", "landmark_node", "device_agent",
            "lightfence"} <= project_packages()  # fmt: skip


@pytest.mark.parametrize("package", sorted(PURE))
def test_the_pure_layer_imports_no_service(package: str) -> None:
    """geo and protocol import no service (verifier, landmark_node, device_agent, audit,
    lightfence, the I/O packages, benchmarks, sim): only each other."""
    assert violations(package, project_packages() - PURE) == {}


def test_the_auditor_imports_only_geo_and_protocol() -> None:
    """The offline auditor exists so nobody has to trust the verifier: it shares no code with
    it or any other service, only the pure layer."""
    assert violations("audit", project_packages() - PURE - {"audit"}) == {}


def test_the_agent_imports_neither_geo_nor_the_verifier() -> None:
    assert violations("device_agent", {"geo", "verifier"}) == {}


def test_the_landmark_does_not_import_the_agent() -> None:
    """Both use udp_io's responder server instead."""
    assert violations("landmark_node", {"device_agent"}) == {}


# What the verifier's storage may use of the verifier: its value types and its config.
STORE_MAY_IMPORT = ("verifier.store", "verifier.model", "verifier.ops_model", "verifier.config")


def test_the_store_imports_no_service_module_of_the_verifier() -> None:
    """Storage sits under the services (alerts, webhooks, scheduler): a store that imported
    them would hide a cycle (it once took the alert JSON shape from verifier.alerts)."""
    found: list[str] = []
    for path in sorted((ROOT / "verifier" / "store").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and not node.level:
                names = [node.module or ""]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            else:
                continue
            found.extend(
                f"{path.relative_to(ROOT)}:{node.lineno} {name}"
                for name in names
                if name.startswith("verifier") and not name.startswith(STORE_MAY_IMPORT)
            )
    assert found == []


@pytest.mark.parametrize("package", sorted(project_packages() - NOT_PRODUCT))
def test_no_product_package_imports_the_benchmarks_or_the_simulator(package: str) -> None:
    """`lightfence bench` loads sim.cli by name only when it runs (lightfence/cli.py), so the
    product installs and imports without the 'sim' extra."""
    assert violations(package, NOT_PRODUCT) == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import verifier.evidence\n", [(1, "verifier")]),
        ("from verifier.evidence import x\n", [(1, "verifier")]),
        ("def f():\n    from lightfence import __version__\n", [(2, "lightfence")]),
        ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import geo.verdict\n",
         [(1, "typing"), (3, "geo")]),
        ("from . import report\nfrom .log import check_log\n", [(1, "audit"), (2, "audit")]),
        ("import json, benchmarks.sim as s\n", [(1, "json"), (1, "benchmarks")]),
    ],
)  # fmt: skip
def test_the_scanner_sees_every_kind_of_import(
    source: str, expected: list[tuple[int, str]]
) -> None:
    assert imports_of(source, "audit") == expected
