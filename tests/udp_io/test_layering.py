"""The I/O packages sit between the pure protocol and the services: udp_io and keystore import
only protocol/ (of the project's packages), and the landmark and the agent share udp_io instead
of importing each other (the landmark side is in tests/test_import_graph.py)."""

from __future__ import annotations

import pytest

from tests.test_import_graph import project_packages, violations


@pytest.mark.parametrize("package", ["udp_io", "keystore"])
def test_io_packages_import_only_protocol(package: str) -> None:
    assert violations(package, project_packages() - {"protocol"}) == {}


def test_the_agent_does_not_import_the_landmark() -> None:
    assert violations("device_agent", {"landmark_node"}) == {}
