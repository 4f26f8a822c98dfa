"""The web dashboard in a real browser (Debian's chromium, headless, driven by selenium through
chromium-driver) against a real 3-node cluster with its managed HAProxy: nodes on 127.0.0.154-156, the
proxy on 127.0.0.158, the dashboard that `up` starts on 127.0.0.157:8080.

The page must show three Synced cards and the writer; after a kill -9 of the writer's mariadbd it must
show the new writer and the dead node's state without a reload (the page's own script object survives,
which a reload would have replaced), and every node Synced again later. A screenshot of each state goes
to the run's output folder (pytest's basetemp, under dashboard/). `down` stops the dashboard.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service

from galera_pilot.credentials import load_credentials
from galera_pilot.embedded.cluster import EmbeddedCluster
from galera_pilot.mariadb import sql
from tests.waiting import wait_for

from .conftest import CLI, cli, dcs_view, destroy, mariadbd_pid, new_cluster_path, test_address
from .sqlite_outage import SqliteOutage

BASE = test_address("127.0.0.154")
PROXY = test_address("127.0.0.158")
DASHBOARD = test_address("127.0.0.157")
NODES = ("node1", "node2", "node3")
URL = f"http://{DASHBOARD}:8080/"

# What the page shows, read in one call: the writer in the header and every card's state and role.
PAGE_VIEW = """
const cards = [...document.querySelectorAll('.card')].map(c => [c.dataset.member, c.dataset.state, c.dataset.role]);
return {writer: document.getElementById('writer').textContent, cards: cards,
        link: document.getElementById('link').textContent, marker: window.__testMarker || null,
        changes: window.__testChanges || []};
"""
# The test's own recorder of what the page drew (a state may last less than one poll of ours).
RECORD_CHANGES = """
window.__testMarker = arguments[0];
window.__testChanges = [];
new MutationObserver(records => {
  for (const r of records) {
    const card = r.target.closest ? r.target.closest('.card') : null;
    if (card) window.__testChanges.push([performance.now(), card.dataset.member, card.dataset.state,
                                         card.dataset.role]);
  }
}).observe(document.getElementById('members'), {attributes: true, subtree: true,
                                                 attributeFilter: ['data-state', 'data-role']});
"""


class Load(threading.Thread):
    """Small writes through the writer endpoint, so the charts have commits to draw; reconnects on errors."""

    def __init__(self, directory: Path) -> None:
        super().__init__(name="dashboard-load", daemon=True)
        self.credentials = load_credentials(directory / "credentials.yaml")
        self.stop = threading.Event()
        self.acked = 0

    def run(self) -> None:
        connection = None
        while not self.stop.is_set():
            try:
                if connection is None:
                    connection = sql.connect_tcp(PROXY, 3306, self.credentials, timeout=2.0)
                with connection.cursor() as cursor:
                    cursor.execute("INSERT INTO app.ticks (at) VALUES (NOW(6))")
                self.acked += 1
            except Exception:
                if connection is not None:
                    with contextlib.suppress(Exception):
                        connection.close()
                connection = None
                time.sleep(0.2)
            time.sleep(0.01)
        if connection is not None:
            connection.close()


@pytest.fixture(scope="module")
def cluster() -> Iterator[Path]:
    directory = new_cluster_path()
    try:
        result = cli("up", "--dir", str(directory), "--base-address", BASE, "--writer-bind", f"{PROXY}:3306",
                     "--reader-bind", f"{PROXY}:3307", "--dashboard-bind", f"{DASHBOARD}:8080")
        assert "3 nodes Synced" in result.stdout and URL in result.stdout, result.stdout + result.stderr
        cli("query", "--dir", str(directory), "CREATE DATABASE IF NOT EXISTS app")
        cli("query", "--dir", str(directory),
            "CREATE TABLE IF NOT EXISTS app.ticks (id BIGINT AUTO_INCREMENT PRIMARY KEY, at DATETIME(6))")
        yield directory
    finally:
        destroy(directory)


@pytest.fixture(scope="module")
def output(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.getbasetemp() / "dashboard"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[webdriver.Chrome]:
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    profile = tmp_path_factory.mktemp("chromium-profile")
    # The flags that keep chromium from reaching for the network (refused here) at every start.
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1000", f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def view(browser: webdriver.Chrome) -> dict:
    return browser.execute_script(PAGE_VIEW)


def all_synced_with_writer(browser: webdriver.Chrome, writer: str) -> bool:
    shown = view(browser)
    states = {name: (state, role) for name, state, role in shown["cards"]}
    return (shown["writer"] == writer and set(states) == set(NODES)
            and all(state == "Synced" for state, _ in states.values()) and states[writer][1] == "writer")


def test_the_page_shows_three_synced_cards_and_the_writer(cluster: Path, browser: webdriver.Chrome,
                                                          output: Path) -> None:
    writer = dcs_view(cluster).writer
    assert writer is not None
    browser.get(URL)
    wait_for(lambda: all_synced_with_writer(browser, writer), 30, f"three Synced cards and {writer} as the writer")
    assert view(browser)["link"] == "live"
    texts = browser.find_element("id", "history").text
    assert "initialize" in texts and "writer" in texts, texts  # the timeline, with its reasons
    browser.save_screenshot(str(output / "1-three-synced.png"))


def test_a_killed_writer_shows_as_a_new_writer_and_a_dead_node_without_a_reload(
        cluster: Path, browser: webdriver.Chrome, output: Path) -> None:
    old = dcs_view(cluster).writer
    assert old is not None
    if not browser.current_url.startswith(URL):
        browser.get(URL)
    wait_for(lambda: all_synced_with_writer(browser, old), 30, "the page settled")
    load = Load(cluster)
    load.start()
    try:
        wait_for(lambda: load.acked > 200, 60, "writes through the writer endpoint")
        time.sleep(3)  # a few samples of commits for the charts
        marker = f"page-{time.monotonic()}"
        browser.execute_script(RECORD_CHANGES, marker)
        pid = mariadbd_pid(cluster, old)
        assert pid is not None
        killed_at = time.monotonic()
        psutil.Process(pid).kill()

        new_writer = wait_for(lambda: (lambda w: w not in ("none", old, "…") and w)(view(browser)["writer"]), 60,
                              "the page naming a new writer")
        shown_after = time.monotonic() - killed_at
        browser.save_screenshot(str(output / "2-failover.png"))
        assert new_writer in NODES and new_writer != old, new_writer

        def dead_node_shown() -> bool:
            return any(name == old and state != "Synced" for _, name, state, _ in view(browser)["changes"])

        wait_for(dead_node_shown, 60, f"the page showing {old} not Synced")
        print(f"the page named the new writer {new_writer} {shown_after:.2f} s after the kill of {old}'s mariadbd")
        wait_for(lambda: all(state == "Synced" for _, state, _ in view(browser)["cards"]) and
                 len(view(browser)["cards"]) == 3, 180, f"{old} Synced again on the page")
        browser.save_screenshot(str(output / "3-rejoined.png"))
        shown = view(browser)
        assert shown["marker"] == marker, "the page was reloaded (its script state is gone)"
        assert shown["link"] == "live"
        charts = browser.execute_script(
            "return [...document.querySelectorAll('.card path')].map(p => p.getAttribute('d') || '')")
        assert sum(1 for d in charts if "L" in d) >= 3, charts  # lines drawn, not only points
    finally:
        load.stop.set()
        load.join(10)


def test_a_dcs_outage_shows_on_the_page_and_the_cards_go_on(cluster: Path, browser: webdriver.Chrome,
                                                            output: Path) -> None:
    """While the DCS cannot be read the page says so and its cards come from the members' REST APIs (as
    `list` falls back); when it answers again the page says so too, all without a reload."""
    dcs_url = EmbeddedCluster(cluster).dcs_url
    assert dcs_url.startswith("sqlite://"), "this module runs on the SQLite DCS (the suite's sqlite lane)"
    if not browser.current_url.startswith(URL):
        browser.get(URL)
    writer = dcs_view(cluster).writer
    assert writer is not None
    wait_for(lambda: all_synced_with_writer(browser, writer), 120, "the page settled")
    marker = f"outage-{time.monotonic()}"
    browser.execute_script(RECORD_CHANGES, marker)

    def dcs_shown() -> str:
        return browser.execute_script("return document.getElementById('dcs').textContent")

    with SqliteOutage(Path(dcs_url.removeprefix("sqlite://"))):
        wait_for(lambda: "UNREACHABLE" in dcs_shown(), 30, "the page saying the DCS is unreachable")
        wait_for(lambda: all_synced_with_writer(browser, writer), 30, "the cards from the members' REST APIs")
        assert browser.find_element("id", "dcs-error").is_displayed()
        assert browser.find_element("id", "history-note").is_displayed()
        browser.save_screenshot(str(output / "4-dcs-outage.png"))
    wait_for(lambda: "answers" in dcs_shown(), 30, "the page saying the DCS answers again")
    assert not browser.find_element("id", "dcs-error").is_displayed()
    assert view(browser)["marker"] == marker, "the page was reloaded"


def test_on_the_proxy_host_it_runs_from_the_proxys_configuration(cluster: Path) -> None:
    """Across hosts the dashboard runs where the proxy runs: `dashboard -c proxy.yaml` finds the members in
    the DCS and verifies their REST APIs with the proxy's bundle, like the proxy does."""
    bind = f"{test_address('127.0.0.159')}:8080"
    proc = subprocess.Popen([*CLI, "dashboard", "-c", str(cluster / "proxy.yaml"), "--bind", bind],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def answered() -> dict | None:
            with urllib.request.urlopen(f"http://{bind}/api/state", timeout=2) as answer:
                state = json.loads(answer.read())
            cards = (state.get("frame") or {}).get("members") or []
            return state if len(cards) == 3 and all(c["api"] == "answered" for c in cards) else None

        state = wait_for(answered, 60, "the proxy host's dashboard with every member's /status")
        assert [c["name"] for c in state["frame"]["members"]] == list(NODES)
        assert state["frame"]["cluster"]["writer"] == dcs_view(cluster).writer
        assert state["frame"]["cluster"]["endpoints"] == {"writer": f"{PROXY}:3306", "reader": f"{PROXY}:3307"}
    finally:
        proc.send_signal(signal.SIGTERM)
        _, errors = proc.communicate(timeout=30)
    assert proc.returncode == 0, errors


def test_down_stops_the_dashboard(cluster: Path) -> None:
    pid = EmbeddedCluster(cluster).dashboard.pid()
    assert pid is not None
    result = cli("down", "--dir", str(cluster))
    assert "dashboard" in result.stdout
    wait_for(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, 30,
             "the dashboard process gone")
