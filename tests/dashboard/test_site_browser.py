"""The chip page's location block in headless Chromium: the declared site, the chip's
unresolved alerts and learned baseline, and an admin declaring a site through the API (a
refused value says why and changes nothing)."""

from __future__ import annotations

from typing import Any

import pytest
from selenium.webdriver.common.by import By

from tests.dashboard.browser import wait_for
from tests.dashboard.test_browser import css, open_dashboard

pytestmark = pytest.mark.browser
CHIP = "jp-001"  # dark in this fleet: no verdict depends on its site


def _site(fleet: Any) -> Any:
    with fleet.client(fleet.admin_token) as client:
        return client.get(f"/v1/chips/{CHIP}").json()["licence"].get("site")


def _facts(driver: Any) -> str:
    return str(driver.find_element(By.ID, "chip-facts").text)


def test_an_admin_declares_and_clears_a_site_and_bad_values_change_nothing(
    driver: Any, fleet: Any
) -> None:
    open_dashboard(driver, fleet, fleet.admin_token, f"#/chip/{CHIP}")
    wait_for(driver, lambda d: "declared site" in _facts(d), "the chip facts")
    assert driver.find_element(By.ID, "site-form").is_displayed()
    shown = {li.get_attribute("data-alert-id") for li in css(driver, "#chip-alerts li")}
    with fleet.client(fleet.admin_token) as client:
        listed = client.get("/v1/alerts", params={"chip_id": CHIP}).json()["items"]
    unresolved = {str(a["alert_id"]) for a in listed if a["status"] != "resolved"}
    assert unresolved and shown == unresolved  # this fleet's jp-001 never answers: went_dark
    lat, lon = driver.find_element(By.ID, "site-lat"), driver.find_element(By.ID, "site-lon")
    lat.send_keys("91")
    lon.send_keys("139.6")
    driver.find_element(By.ID, "site-save").click()
    wait_for(driver, lambda d: "lat_deg" in d.find_element(By.ID, "site-error").text,
             "the refusal")
    assert "Refused (422)" in driver.find_element(By.ID, "site-error").text
    assert _site(fleet) is None
    lat.clear()
    driver.find_element(By.ID, "site-save").click()
    wait_for(driver, lambda d: "latitude and longitude" in d.find_element(By.ID, "site-error").text,
             "the missing value")
    assert _site(fleet) is None
    lat.send_keys("35.6")
    driver.find_element(By.ID, "site-save").click()
    wait_for(driver, lambda d: "35.6000, 139.6000" in _facts(d), "the declared site")
    assert _site(fleet) == {"lat_deg": 35.6, "lon_deg": 139.6}
    assert driver.find_element(By.ID, "site-error").text == ""
    driver.find_element(By.ID, "site-clear").click()
    wait_for(driver, lambda d: "35.6000" not in _facts(d), "the cleared site")
    assert _site(fleet) is None


def test_a_read_only_token_sees_the_location_block_without_the_form(
    driver: Any, fleet: Any
) -> None:
    open_dashboard(driver, fleet, fleet.dashboard_token, "#/chip/fr-001")
    wait_for(driver, lambda d: css(d, "#rtt-baseline tbody tr"), "the learned baseline")
    rows = {r.get_attribute("data-landmark-id") for r in css(driver, "#rtt-baseline tbody tr")}
    with fleet.client(fleet.dashboard_token) as client:
        learned = client.get("/v1/chips/fr-001/rtt-baseline").json()
    assert rows == {item["landmark_id"] for item in learned["items"]}
    assert not driver.find_element(By.ID, "site-form").is_displayed()
    assert css(driver, "#chip-alerts li")[0].text == "no unresolved alert"
