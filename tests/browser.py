"""Headless Chromium for browser tests (the dashboard), driven by Selenium.

The browser and its driver are Debian's packages, given by path, so that Selenium Manager
never runs and nothing is downloaded:

    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver
    .venv/bin/pip install selenium

A missing browser is an error, never a skip: a test that needs it fails and says how to
install it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
INSTALL = "DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver"
PAGE_LOAD_TIMEOUT_S = 20.0
SCRIPT_TIMEOUT_S = 10.0

ARGS = (
    "--headless=new",
    "--no-sandbox",  # tests run as root, where Chromium's sandbox refuses to start
    "--disable-gpu",
    "--disable-dev-shm-usage",  # /dev/shm may be small in containers
    "--window-size=1280,900",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-extensions",
    "--disable-background-networking",  # no update checks, no calls home: works offline
    "--disable-component-update",
    "--disable-sync",
)


@contextlib.contextmanager
def browser(page_load_timeout: float = PAGE_LOAD_TIMEOUT_S) -> Iterator[WebDriver]:
    """A headless Chromium WebDriver with its own temporary profile; always quit on exit.

    The browser's console is kept: `driver.get_log("browser")` lists its messages.
    """
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        raise RuntimeError(f"browser tests need {' and '.join(missing)}: {INSTALL}")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ARGS:
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    profile = tempfile.mkdtemp(prefix="vigil-chromium-")
    options.add_argument(f"--user-data-dir={profile}")
    try:
        driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
        try:
            driver.set_page_load_timeout(page_load_timeout)
            driver.set_script_timeout(SCRIPT_TIMEOUT_S)
            yield driver
        finally:
            driver.quit()
    finally:
        shutil.rmtree(profile, ignore_errors=True)
