"""The dashboard's Operations panel in headless Chromium: zones with their verified share,
channels and routing rules added by an admin, a mute added by an operator, and a muted alert
marked as muted when it arrives over the live stream."""

from __future__ import annotations

import json
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from tests.dashboard.browser import wait_for
from tests.dashboard.test_browser import css, open_dashboard

pytestmark = pytest.mark.browser


def test_zone_share_and_admin_sets_up_routing_from_the_page(driver: Any, fleet: Any) -> None:
    with fleet.client(fleet.admin_token) as admin:
        assert admin.put("/v1/zones/paris", json={"name": "Paris", "lat_deg": 48.86,
                                                   "lon_deg": 2.35}).status_code == 200
        for chip_id in ("fr-001", "fr-002"):  # verified and violation
            assert admin.put(f"/v1/chips/{chip_id}/membership",
                             json={"zone_id": "paris"}).status_code == 200
    open_dashboard(driver, fleet, fleet.admin_token)
    wait_for(driver, lambda d: css(d, "#zones tr[data-zone-id='paris']"), "the zones table")
    paris = css(driver, "#zones tr[data-zone-id='paris']")[0]
    assert paris.get_attribute("data-verified-share") == "0.5" and "50 %" in paris.text
    # The zone filter narrows the chip table to the zone's chips, and back.
    wait_for(driver, lambda d: css(d, "#filter-zone option[value='paris']"), "the zone filter")
    Select(driver.find_element(By.ID, "filter-zone")).select_by_value("paris")
    rows = {r.get_attribute("data-chip-id") for r in css(driver, "#chips tbody tr")}
    assert rows == {"fr-001", "fr-002"}
    Select(driver.find_element(By.ID, "filter-zone")).select_by_value("")
    driver.find_element(By.ID, "channel-id").send_keys("ops-slack")
    Select(driver.find_element(By.ID, "channel-kind")).select_by_value("slack")
    driver.find_element(By.ID, "channel-settings").send_keys(
        json.dumps({"url": "https://hooks.example/T0/secret-part"}))
    driver.find_element(By.CSS_SELECTOR, "#channel-form button").click()
    wait_for(driver, lambda d: css(d, "#route-channel option[value='ops-slack']"),
             "the new channel to be offered for routing")
    Select(driver.find_element(By.ID, "route-channel")).select_by_value("ops-slack")
    Select(driver.find_element(By.ID, "route-severity")).select_by_value("high")
    driver.find_element(By.ID, "route-zones").send_keys("paris")
    driver.find_element(By.CSS_SELECTOR, "#route-form button").click()
    wait_for(driver, lambda d: css(d, "#routing li"), "the new routing rule")
    assert "secret-part" not in driver.find_element(By.ID, "operations").text
    with fleet.client(fleet.dashboard_token) as reader:
        [rule] = reader.get("/v1/routing-rules").json()["items"]
    assert (rule["channel_id"], rule["min_severity"], rule["zones"]) == ("ops-slack", "high",
                                                                         ["paris"])


def test_operator_mutes_from_the_page_and_the_alert_arrives_marked_muted(driver: Any,
                                                                         fleet: Any) -> None:
    from tests.dashboard.fleet import Place

    with fleet.client(fleet.admin_token) as admin:
        operator = admin.post("/v1/tokens", json={"role": "operator",
                                                  "label": "night-shift"}).json()["token"]
    open_dashboard(driver, fleet, operator)
    wait_for(driver, lambda d: d.find_element(By.ID, "mute-form").is_displayed(),
             "the mute form for an operator")
    assert not driver.find_element(By.ID, "channel-form").is_displayed()  # admin only
    driver.find_element(By.ID, "mute-reason").send_keys("CHG-7 install in Busan")
    Select(driver.find_element(By.ID, "mute-scope")).select_by_value("chip_id")
    driver.find_element(By.ID, "mute-value").send_keys("kr-009")
    driver.find_element(By.CSS_SELECTOR, "#mute-form button").click()
    wait_for(driver, lambda d: any("kr-009" in li.text for li in css(d, "#mutes li")),
             "the mute in the list")
    with fleet.client(fleet.dashboard_token) as reader:
        [mute] = [m for m in reader.get("/v1/mutes").json()["items"] if m["chip_id"] == "kr-009"]
    assert mute["created_by"] == "night-shift"
    wait_for(driver, lambda d: "live" in d.find_element(By.ID, "stream-state").text,
             "the alert stream to connect")
    fleet.add_chip(Place("kr-009", 35.1, 129.0), owner="busan-gpu", allowed=["KOR"],
                   policy="fast-dark", silent=True)
    selector = "#alerts li[data-subject-id='kr-009'] .muted-badge"
    wait_for(driver, lambda d: css(d, selector), "the muted alert to arrive", timeout_s=30)
    with fleet.client(fleet.dashboard_token) as reader:
        [alert] = reader.get("/v1/alerts", params={"chip_id": "kr-009"}).json()["items"]
    assert (alert["type"], alert["muted_by_rule"]) == ("went_dark", mute["rule_id"])
