"""Headless Debian Chromium driven by Selenium, for the dashboard tests.

Selenium Manager would try to download a browser; we point it at the Debian `chromium` and
`chromedriver` binaries instead (scripts/install_browser.sh installs them), and skip with the
reason when they are missing.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from selenium import webdriver
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

WAIT_S = 15.0


def chromium_binaries() -> tuple[str, str] | str:
    """(browser, driver) paths, or the reason they cannot be used."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if browser is None or driver is None:
        return (
            "headless chromium and chromedriver are not installed "
            "(run scripts/install_browser.sh as root: apt-get install chromium chromium-driver)"
        )
    return browser, driver


def start_chromium(browser: str, driver: str, download_dir: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = browser
    for argument in (
        "--headless=new",
        "--no-sandbox",  # tests run as root in containers, where the sandbox cannot start
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1500,1000",
        "--lang=en-US",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(download_dir),
            "download.prompt_for_download": False,
        },
    )
    return webdriver.Chrome(options=options, service=Service(executable_path=driver))


def wait_for(driver: webdriver.Chrome, condition: Callable[[webdriver.Chrome], Any],
             what: str, timeout_s: float = WAIT_S) -> Any:
    """Waits for `condition` to be truthy; fails naming `what` and the browser log. An element
    replaced while the condition reads it (the page re-renders on data changes) means "not yet"."""
    try:
        return WebDriverWait(driver, timeout_s, poll_frequency=0.1,
                             ignored_exceptions=(StaleElementReferenceException,)).until(condition)
    except TimeoutException as exc:
        log = browser_log(driver)
        raise AssertionError(f"timed out waiting for {what}; browser log: {log}") from exc


def browser_log(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    """Console and network messages since the last call (the log is drained by reading it)."""
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return entries
