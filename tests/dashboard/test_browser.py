"""The dashboard in headless Chromium against a real verifier fed by simulated landmarks."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.dashboard.browser import browser_log, wait_for
from tests.dashboard.conftest import CHIPS, LANDMARKS

pytestmark = pytest.mark.browser

# Tests never write into the repository: the picture goes to a temporary folder unless
# scripts/dashboard_screenshot.sh asks for docs/dashboard.png on purpose.
SCREENSHOT_ENV = "LIGHTFENCE_DASHBOARD_SCREENSHOT"


def open_dashboard(driver: Any, fleet: Any, token: str, hash_: str = "") -> None:
    driver.get("about:blank")  # a fresh document each time, whatever the previous test left
    driver.get(f"{fleet.base_url}/?token={token}{hash_}")
    wait_for(driver, lambda d: d.find_element(By.ID, "role-badge").get_attribute("data-role"),
             "the page to sign in")
    wait_for(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#alerts li"), "alerts to load")


def css(driver: Any, selector: str) -> list[Any]:
    elements: list[Any] = driver.find_elements(By.CSS_SELECTOR, selector)
    return elements


def chip_states(fleet: Any) -> dict[str, str]:
    with fleet.client(fleet.admin_token) as client:
        return {c["chip_id"]: c["state"] for c in client.get("/v1/chips").json()["items"]}


def test_map_renders_chips_regions_landmarks_without_console_errors(driver: Any, fleet: Any,
                                                                     tmp_path: Path) -> None:
    open_dashboard(driver, fleet, fleet.admin_token)
    states = chip_states(fleet)
    answering = {ident for ident, *_, answers in CHIPS if answers}
    wait_for(driver, lambda d: len(css(d, ".chip-marker")) == len(answering),
             "a marker for every chip with an estimate")
    markers = {m.get_attribute("data-chip-id"): m.get_attribute("data-verdict")
               for m in css(driver, ".chip-marker")}
    assert markers == {chip_id: states[chip_id] for chip_id in answering}
    assert states["fr-002"] == "violation"
    assert states["jp-001"] == "dark"
    regions = {r.get_attribute("data-chip-id") for r in css(driver, ".sound-region")}
    assert regions == answering
    assert len(css(driver, ".landmark-marker")) == len(LANDMARKS)
    assert len(css(driver, "path.country")) > 200
    shaded = {p.get_attribute("data-iso3") for p in css(driver, "path.licence-allowed")}
    assert shaded == {"FRA", "DEU", "JPN"}
    # The token left the address bar once the page stored it.
    assert "token=" not in driver.current_url
    rows = {r.get_attribute("data-chip-id") for r in css(driver, "#chips tbody tr")}
    assert rows == {ident for ident, *_ in CHIPS}
    severe = [e for e in browser_log(driver) if e["level"] == "SEVERE"]
    assert severe == []
    time.sleep(0.5)  # let the last alert flash fade in before the picture
    screenshot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "dashboard.png")
    assert driver.save_screenshot(str(screenshot))


def test_wheel_zoom_and_buttons_change_the_view(driver: Any, fleet: Any) -> None:
    open_dashboard(driver, fleet, fleet.dashboard_token)
    svg = driver.find_element(By.ID, "map")

    def view_box() -> str:
        value: str = driver.execute_script("return arguments[0].getAttribute('viewBox')", svg)
        return value

    world = view_box()
    driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "arguments[0].dispatchEvent(new WheelEvent('wheel', {deltaY: -100, clientX: r.left + "
        "r.width / 2, clientY: r.top + r.height / 2, bubbles: true, cancelable: true}));", svg)
    zoomed = view_box()
    assert float(zoomed.split()[2]) < float(world.split()[2])
    driver.find_element(By.ID, "zoom-reset").click()
    assert view_box() == world


def test_filters_and_search_narrow_chips_markers_and_alerts(driver: Any, fleet: Any) -> None:
    open_dashboard(driver, fleet, fleet.dashboard_token)

    def visible_rows() -> set[str]:
        return {r.get_attribute("data-chip-id") for r in css(driver, "#chips tbody tr")}

    Select(driver.find_element(By.ID, "filter-verdict")).select_by_value("violation")
    assert visible_rows() == {"fr-002"}
    assert {m.get_attribute("data-chip-id") for m in css(driver, ".chip-marker")} == {"fr-002"}
    assert {a.get_attribute("data-subject-id") for a in css(driver, "#alerts li")} == {"fr-002"}
    Select(driver.find_element(By.ID, "filter-verdict")).select_by_value("")

    Select(driver.find_element(By.ID, "filter-owner")).select_by_value("acme-cloud")
    assert visible_rows() == {"fr-001", "fr-002"}
    Select(driver.find_element(By.ID, "filter-owner")).select_by_value("")

    Select(driver.find_element(By.ID, "filter-country")).select_by_value("DEU")
    assert visible_rows() == {"de-001"}
    Select(driver.find_element(By.ID, "filter-country")).select_by_value("")

    search = driver.find_element(By.ID, "search")
    search.send_keys("jp-")
    assert visible_rows() == {"jp-001"}
    search.clear()
    driver.execute_script("arguments[0].dispatchEvent(new Event('input'))", search)
    assert len(visible_rows()) == len(CHIPS)

    Select(driver.find_element(By.ID, "filter-alert-type")).select_by_value("went_dark")
    types = {a.get_attribute("data-type") for a in css(driver, "#alerts li")}
    assert types == {"went_dark"}
    Select(driver.find_element(By.ID, "filter-alert-type")).select_by_value("")


def test_read_only_token_cannot_acknowledge(driver: Any, fleet: Any) -> None:
    open_dashboard(driver, fleet, fleet.dashboard_token)
    assert "read-only" in driver.find_element(By.ID, "role-badge").text
    assert driver.find_element(By.ID, "alert-note").is_displayed()
    assert css(driver, "#alerts button") == []
    alert = css(driver, "#alerts li[data-status='open']")[0]
    alert_id = alert.get_attribute("data-alert-id")
    # Even bypassing the hidden buttons, the API refuses the page's read-only token.
    status = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "fetch(`/v1/alerts/${arguments[0]}/ack`, {method: 'POST', headers: {"
        "'Authorization': 'Bearer ' + sessionStorage.getItem('lightfence.token'),"
        "'Content-Type': 'application/json'}, body: JSON.stringify({reason: 'try'})})"
        ".then(r => done(r.status));", alert_id)
    assert status == 403
    with fleet.client(fleet.admin_token) as client:
        assert client.get(f"/v1/alerts/{alert_id}").json()["status"] == "open"


def test_acknowledge_changes_state_through_the_api(driver: Any, fleet: Any) -> None:
    open_dashboard(driver, fleet, fleet.admin_token)
    alert_id = css(driver, "#alerts li[data-status='open'][data-subject-id='fr-002']")[0] \
        .get_attribute("data-alert-id")
    # The list re-renders as the fleet refreshes, so each step finds its element afresh.
    selector = f"#alerts li[data-alert-id='{alert_id}']"
    driver.find_element(By.CSS_SELECTOR, f"{selector} button.ack").click()
    assert "Give a reason" in driver.find_element(By.ID, "alert-error").text
    driver.find_element(By.CSS_SELECTOR, f"{selector} input.action-reason") \
        .send_keys("customer contacted")
    driver.find_element(By.CSS_SELECTOR, f"{selector} button.ack").click()
    wait_for(driver, lambda d: css(d, f"#alerts li[data-alert-id='{alert_id}']")[0]
             .get_attribute("data-status") == "acknowledged", "the alert to show acknowledged")
    with fleet.client(fleet.dashboard_token) as client:
        stored = client.get(f"/v1/alerts/{alert_id}").json()
    assert stored["status"] == "acknowledged"
    assert stored["acknowledged_by"] == "officer"
    assert stored["acknowledged_reason"] == "customer contacted"


def test_new_alert_appears_live_without_reload(driver: Any, fleet: Any) -> None:
    from tests.dashboard.fleet import Place

    open_dashboard(driver, fleet, fleet.dashboard_token)
    driver.execute_script("window.__sameDocument = true;")
    wait_for(driver, lambda d: "live" in d.find_element(By.ID, "stream-state").text,
             "the alert stream to connect")
    fleet.add_chip(Place("kr-001", 37.5, 127.0), owner="han-river", allowed=["KOR"],
                   policy="fast-dark", silent=True)
    wait_for(driver, lambda d: css(d, "#alerts li[data-subject-id='kr-001']"),
             "the new chip's alert to arrive over the stream", timeout_s=30)
    item = css(driver, "#alerts li[data-subject-id='kr-001']")[0]
    assert item.get_attribute("data-type") == "went_dark"
    assert driver.execute_script("return window.__sameDocument === true;")


def test_chip_page_shows_licence_history_rtts_and_downloads_evidence(
    driver: Any, fleet: Any, download_dir: Path
) -> None:
    open_dashboard(driver, fleet, fleet.dashboard_token, "#/chip/fr-001")
    wait_for(driver, lambda d: css(d, "#verdict-history tbody tr"), "the verdict history")
    assert driver.find_element(By.ID, "chip-page").is_displayed()
    facts = driver.find_element(By.ID, "chip-facts").text
    assert "FRA" in facts and "acme-cloud" in facts
    assert "software key" in facts  # the fleet's keys are files: said plainly
    assert "not attested" in facts  # no GPU attestation in this fleet
    rtts = {r.get_attribute("data-landmark-id") for r in css(driver, "#latest-rtts tbody tr")}
    with fleet.client(fleet.dashboard_token) as client:
        latest = client.get("/v1/chips/fr-001/verdicts", params={"limit": 1}).json()["items"][0]
    # A newer round may land between the page's fetch and ours; both use the same landmarks set
    # size, and every landmark shown is one the verifier used.
    assert rtts and rtts <= {lm for lm, *_ in LANDMARKS}
    assert len(rtts) == len(latest["landmarks"])
    assert css(driver, "#verdict-timeline rect")
    assert {r.get_attribute("data-chip-id") for r in css(driver, ".sound-region")} == {"fr-001"}
    driver.find_element(By.ID, "download-evidence").click()
    downloaded = wait_for(driver, lambda d: list(download_dir.glob("evidence-fr-001-*.json")),
                          "the evidence download")
    evidence = json.loads(downloaded[0].read_text())
    assert evidence["chip"]["chip_id"] == "fr-001"
    assert evidence["verdict"]["chip_id"] == "fr-001"
    assert evidence["verdict"]["landmarks"]
