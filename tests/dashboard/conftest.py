"""Fixtures for the browser tests: a real verifier with a simulated fleet, and headless Chromium."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dashboard.browser import chromium_binaries, start_chromium

FLEET_READY_S = 60.0

LANDMARKS = (
    ("lm-paris", 48.86, 2.35),
    ("lm-lyon", 45.76, 4.84),
    ("lm-berlin", 52.52, 13.40),
    ("lm-munich", 48.14, 11.58),
    ("lm-moscow", 55.76, 37.62),
    ("lm-tokyo", 35.68, 139.69),
)
# chip id, true position, owner, licensed countries, answers?
CHIPS = (
    ("fr-001", 48.70, 2.20, "acme-cloud", ["FRA"], True),
    # 2 km from lm-berlin, so that its sound disc grown by DEU's border error bound (17.9 km)
    # stays clear of the Oder.
    ("de-001", 52.50, 13.40, "spree-ai", ["DEU"], True),
    ("fr-002", 55.70, 37.50, "acme-cloud", ["FRA"], True),  # licensed for France, in Moscow
    ("jp-001", 35.60, 139.60, "kanto-gpu", ["JPN"], False),  # never answers: goes dark
)
# What the verifier must conclude when every landmark measures every chip.
EXPECTED_STATES = {"fr-001": "verified", "de-001": "verified", "fr-002": "violation",
                   "jp-001": "dark"}


@pytest.fixture(scope="session")
def chromium() -> tuple[str, str]:
    found = chromium_binaries()
    if isinstance(found, str):
        pytest.skip(found)
    return found


@pytest.fixture(scope="session")
def fleet(tmp_path_factory: pytest.TempPathFactory, chromium: tuple[str, str]) -> Iterator[Any]:
    from tests.dashboard.fleet import CERT_LIFETIME_S, Fleet, Place, free_port, start_verifier
    from tests.pki import Pki

    pki = Pki(lifetime_s=CERT_LIFETIME_S)
    server, thread, base_url, admin, dashboard = start_verifier(
        tmp_path_factory.mktemp("verifier"), pki.ca)
    fleet = Fleet(base_url=base_url, admin_token=admin, dashboard_token=dashboard, pki=pki,
                  landmark_tokens={}, landmarks={})
    # Every landmark measures every chip, so each round's verdict is the same.
    everyone = len(LANDMARKS)
    # A round waits long enough for every simulated landmark's answer even on a loaded CI
    # machine; a round closed early decides on fewer caps and may only be inconclusive.
    fleet.put_policy("steady", round_interval_s=3.0, round_timeout_s=2.5, dark_window_s=3_600,
                     landmarks_per_round=everyone)
    fleet.put_policy("fast-dark", round_interval_s=1.0, round_timeout_s=0.5, dark_window_s=1.0,
                     landmarks_per_round=everyone)
    for ident, lat, lon in LANDMARKS:
        fleet.add_landmark(Place(ident, lat, lon), free_port())
    for ident, lat, lon, owner, allowed, answers in CHIPS:
        fleet.add_chip(Place(ident, lat, lon), owner=owner, allowed=allowed,
                       policy="steady" if answers else "fast-dark", silent=not answers)
    landmarks = threading.Thread(target=fleet.run_landmarks, name="landmarks", daemon=True)
    landmarks.start()
    try:
        wait_for_states(fleet, EXPECTED_STATES)
        yield fleet
    finally:
        fleet.stop.set()
        landmarks.join(timeout=10)
        server.should_exit = True
        thread.join(timeout=10)


def wait_for_states(fleet: Any, expected: dict[str, str]) -> None:
    deadline = time.monotonic() + FLEET_READY_S
    with fleet.client(fleet.admin_token) as client:
        while True:
            chips = client.get("/v1/chips").json()["items"]
            states = {chip["chip_id"]: chip["state"] for chip in chips}
            if states == expected:
                return
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"chip states {states} != {expected} after {FLEET_READY_S} s; "
                    f"verifier 5xx (first 3): {fleet.server_errors[:3]}")
            time.sleep(0.2)


@pytest.fixture(scope="session")
def download_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="session")
def driver(chromium: tuple[str, str], download_dir: Path) -> Iterator[Any]:
    browser = start_chromium(*chromium, download_dir)
    try:
        yield browser
    finally:
        browser.quit()
