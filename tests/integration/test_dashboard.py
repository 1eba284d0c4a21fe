"""The dashboard in a real browser (Debian's headless Chromium, driven by Selenium) against a
real cluster in namespaces: it shows both nodes and the owner, and a click on standby moves
the group, seen on the page without a reload."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator

from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser import browser
from tests.integration.test_api import API_PORT, TOKEN, api_cluster
from vigil.lab.cluster import LabCluster


@contextlib.contextmanager
def dashboard(c: LabCluster) -> Iterator[WebDriver]:
    """Both nodes started, n1 holding the group, and n1's dashboard open in the browser."""
    c.start("n1")
    c.start("n2")
    c.wait_holder("n1")
    port = c.forward("n1", API_PORT)
    with browser() as d:
        d.get(f"http://127.0.0.1:{port}/")
        yield d


def test_standby_from_the_dashboard_moves_the_group_and_the_page_shows_it() -> None:
    with api_cluster() as c:
        with dashboard(c) as d:
            wait = WebDriverWait(d, 10)
            wait.until(ec.text_to_be_present_in_element((By.ID, "group-web-owner"), "n1"))
            assert d.find_element(By.ID, "node-n1-state").text in ("up", "active")
            assert d.find_element(By.ID, "node-n2-state").text == "up"
            assert d.find_element(By.ID, "group-web-state").text == "running"
            wait.until(lambda _: d.find_element(By.ID, "link-eth0-age").text.endswith("ago"))
            page = d.find_element(By.TAG_NAME, "body")  # the same element after the move:
            # no reload happened
            d.find_element(By.ID, "token").send_keys(TOKEN)
            d.find_element(By.ID, "btn-standby").click()
            wait.until(ec.alert_is_present())
            alert = d.switch_to.alert
            assert "standby" in alert.text.lower()
            t0 = time.monotonic()
            alert.accept()
            wait.until(ec.text_to_be_present_in_element((By.ID, "group-web-owner"), "n2"))
            shown = time.monotonic() - t0
            assert "handing web to n2" in d.find_element(By.ID, "message").text
            c.wait_holder("n2")
            assert page.is_displayed()  # a stale element would raise: the page was not reloaded
            kinds = [e.get_attribute("data-kind") for e in
                     d.find_elements(By.CSS_SELECTOR, "#events li")]
            assert "group_stopped" in kinds and "became_standby" in kinds
            errors = [m for m in d.get_log("browser") if m["level"] == "SEVERE"]
            assert not errors, errors
            assert shown < 5, f"the page took {shown:.1f} s to show the new owner"


def test_the_dashboard_shows_the_balancer_s_real_servers() -> None:
    """A virtual server on the group's address in front of both nodes' web servers and one
    address where nothing listens: the page shows each real server's health as the checks
    find it, and that this director directs."""
    with api_cluster() as c:
        reals = [f"{c.lab.address(n)}:80" for n in ("n1", "n2")] + \
            [f"{c.lab.address('client')}:9"]
        c.add_config(f'[[virtual_server]]\nname = "web"\naddress = "{c.vip}:8080"\n'
                     f'group = "web"\nscheduler = "rr"\n'
                     f'[virtual_server.check]\ntype = "http"\ninterval = "200ms"\n'
                     f'timeout = "100ms"\n' +
                     "".join(f'[[virtual_server.real]]\naddress = "{r}"\n' for r in reals))
        with dashboard(c) as d:
            wait = WebDriverWait(d, 10)
            for r, health in zip(reals, ("up", "up", "down")):
                wait.until(ec.text_to_be_present_in_element((By.ID, f"lb-web-{r}-health"),
                                                            health))
            rows = d.find_elements(By.CSS_SELECTOR, "#lb tr")
            assert len(rows) == 3 and "directing" in rows[0].text, [r.text for r in rows]
            wait.until(ec.text_to_be_present_in_element(  # the counters, read every 2 s
                (By.CSS_SELECTOR, "#lb tr:first-child td:nth-child(7)"), "0 connections"))
            assert "refused" in rows[2].text and "no" in rows[2].text, rows[2].text
            errors = [m for m in d.get_log("browser") if m["level"] == "SEVERE"]
            assert not errors, errors
