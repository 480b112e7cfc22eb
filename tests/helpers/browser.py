"""A real browser for tests: headless Chromium driven by Selenium, and file servers to point it at.

The browser tests (tests/browser/) check what only a browser shows: that links in a listing
really lead where they say, that a form really uploads, that Chromium really logs in with Basic
auth and really lets a cross-origin ``fetch()`` through after a preflight.

Rules of this module:

* Nothing is downloaded. Chromium and chromedriver are Debian's (``apt-get install chromium
  chromium-driver``, done by .ci/run); Selenium gets both paths explicitly, so Selenium Manager
  (which would fetch a browser and a driver) never runs, and ``SE_OFFLINE`` forbids it anyway.
* Where Selenium, Chromium or chromedriver is missing, the fixtures ``pytest.skip`` with the
  reason; an installed browser that fails to start is a failure, not a skip.
* The browser only talks to loopback: no proxy, no background networking, no component
  updates, and a host resolver that resolves nothing (tests use ``127.0.0.1`` literals).
* One Chromium per test module (``chromium``); each test gets it back reset (``browser``):
  a blank page, no cookies, no emulated device, no extra headers.
* Every wait is bounded: the server's start line, page loads, scripts, element waits, the
  WebDriver HTTP calls themselves, and the servers' and the browser's shutdown.
* Servers are ``python -m minihttp`` subprocesses on 127.0.0.1 port 0 (the URL is read from the
  line the server prints); their stderr (the access log) goes to a file tests can read.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import selectors
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest

from tests.helpers.processes import stop_process
from tests.helpers.servers import wait_for

REPO = Path(__file__).resolve().parent.parent.parent

#: Seconds for one page load, one script, one element wait, one server start.
TIMEOUT = 15.0

#: Flags that make Chromium work here: headless, as root (no sandbox), and silent on the
#: network (without the background-networking flags its own connections to the outside are
#: refused by the closed network and slow it down). QUIC is off so every request is HTTP/1.1
#: over TCP to our server.
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--no-proxy-server",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    "--window-size=1280,900",
)


def _first(*candidates: str | None) -> str | None:
    for c in candidates:
        if c and os.path.isfile(c) and os.access(c, os.X_OK):
            return c
    return None


def chromium_binary() -> str | None:
    """Path of an installed Chromium (Debian's package; $MINIHTTP_CHROMIUM overrides), or None."""
    if "MINIHTTP_CHROMIUM" in os.environ:
        return _first(os.environ["MINIHTTP_CHROMIUM"])
    return _first(shutil.which("chromium"), shutil.which("chromium-browser"), "/usr/bin/chromium")


def chromedriver_binary() -> str | None:
    """Path of an installed chromedriver (Debian's chromium-driver; $MINIHTTP_CHROMEDRIVER
    overrides), or None."""
    if "MINIHTTP_CHROMEDRIVER" in os.environ:
        return _first(os.environ["MINIHTTP_CHROMEDRIVER"])
    return _first(shutil.which("chromedriver"), "/usr/bin/chromedriver",
                  "/usr/lib/chromium/chromedriver")


def why_no_browser() -> str | None:
    """Why browser tests cannot run here (the skip reason), or None when they can."""
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[test]')"
    if chromium_binary() is None:
        return "Chromium is not installed (apt-get install chromium)"
    if chromedriver_binary() is None:
        return "chromedriver is not installed (apt-get install chromium-driver)"
    return None


def start_chromium(user_data_dir: str) -> Any:
    """A new headless Chromium with a fresh profile in ``user_data_dir``; the caller quits it."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must never download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium_binary()  # type: ignore[assignment]
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={user_data_dir}")
    service = Service(executable_path=chromedriver_binary(),
                      log_output=os.path.join(user_data_dir, "chromedriver.log"))
    # The WebDriver client's HTTP timeout is read from the socket default when the connection
    # is made: bound it (including the session-creating call) instead of waiting forever.
    old = socket.getdefaulttimeout()
    socket.setdefaulttimeout(60)
    try:
        driver = webdriver.Chrome(service=service, options=options)
    finally:
        socket.setdefaulttimeout(old)
    driver.set_page_load_timeout(TIMEOUT)
    driver.set_script_timeout(TIMEOUT)
    driver.implicitly_wait(0)
    return driver


def reset(driver: Any) -> None:
    """Put the shared browser back to a neutral state between tests."""
    driver.get("about:blank")
    driver.delete_all_cookies()
    driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})
    driver.execute_cdp_cmd("Network.clearBrowserCache", {})


@pytest.fixture(scope="module")
def chromium(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """The module's headless Chromium (skips the test where none is installed).

    One per test module, not per session: starting one costs about half a second, and a
    browser per module keeps its caches (credentials, visited links) to one module and does
    not keep running through the rest of the suite."""
    reason = why_no_browser()
    if reason:
        pytest.skip(reason)
    profile = tmp_path_factory.mktemp("chromium-profile")
    driver = start_chromium(str(profile))
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture
def browser(chromium: Any) -> Iterator[Any]:
    """The module's Chromium, reset for this test."""
    reset(chromium)
    yield chromium


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where tests save screenshots: $MINIHTTP_SHOTS if set, else a session temp dir."""
    where = os.environ.get("MINIHTTP_SHOTS")
    if where:
        path = Path(where)
        path.mkdir(parents=True, exist_ok=True)
        return path
    return tmp_path_factory.mktemp("shots")


# -- waiting on the page --------------------------------------------------------------------


def wait_until(driver: Any, cond: Callable[[Any], Any], what: str,
               timeout: float = TIMEOUT) -> Any:
    """``cond(driver)``'s first truthy value, polled for at most ``timeout`` seconds."""
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.05).until(cond)
    except Exception as exc:  # TimeoutException: say what we waited for, and where we were
        raise AssertionError(
            f"waited {timeout} s for {what}; at {driver.current_url!r}, page text: "
            f"{page_text(driver)[:500]!r}") from exc


def page_text(driver: Any) -> str:
    """The visible text of the page's body ('' when there is no body)."""
    return str(driver.execute_script("return document.body ? document.body.innerText : ''"))


def navigation_status(driver: Any) -> int | None:
    """HTTP status of the response the current page came from (Navigation Timing's
    ``responseStatus``); the one way to see a 401 in headless Chromium, which shows a
    challenged page as blank (where a person would get the login dialog)."""
    status = driver.execute_script(
        "const e = performance.getEntriesByType('navigation')[0];"
        " return e ? e.responseStatus : null")
    return None if status is None else int(status)


def wait_text(driver: Any, css: str, expected: str, timeout: float = TIMEOUT) -> str:
    """Wait until the element ``css`` exists and its text contains ``expected``; its text."""
    from selenium.webdriver.common.by import By

    def check(d: Any) -> str | bool:
        found = d.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found and expected in found[0].text else False

    return str(wait_until(driver, check, f"{css} to contain {expected!r}", timeout))


def links(driver: Any, *, within: str = "body") -> dict[str, str]:
    """The links inside the elements ``within`` (a CSS selector) as ``{text: href
    attribute}`` (the attribute as written, not resolved)."""
    return dict(driver.execute_script(
        "const o = {}; for (const a of document.querySelectorAll(arguments[0] + ' a[href]'))"
        " o[a.textContent] = a.getAttribute('href'); return o;", within))


def click_link(driver: Any, text: str, *, within: str = "body") -> None:
    """Click the first link inside ``within`` (a CSS selector) whose whole text is ``text``
    and wait for the next page to load."""
    from selenium.webdriver.common.by import By

    before = driver.execute_script("return performance.timeOrigin")
    anchors = [a for a in driver.find_elements(By.CSS_SELECTOR, within + " a")
               if a.text == text]
    assert anchors, f"no link {text!r} on {driver.current_url}; links: {sorted(links(driver))}"
    anchors[0].click()
    wait_until(driver, lambda d: d.execute_script(
        "return document.readyState === 'complete' && performance.timeOrigin") not in (False, before),
        f"the page after clicking {text!r} to load")


# -- servers --------------------------------------------------------------------------------


@dataclass
class FileServer:
    """A running ``python -m minihttp`` and where to reach it."""

    url: str  # e.g. "http://127.0.0.1:40123" (no trailing slash)
    port: int
    log_path: Path
    process: subprocess.Popen[str]

    def log(self) -> str:
        """The server's stderr (the access log, warnings) up to now, every line of the
        requests answered so far included.

        The access log is written in batches (minihttp/_linewriter.py), so this asks for a
        marker path and waits (bounded) until its line is there: lines are written in the
        order they were handed over, so every earlier request's line is there too.
        """
        marker = f"/log-marker-{uuid.uuid4().hex}"
        with socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT) as c:
            c.sendall(f"GET {marker} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
                      .encode())
            while c.recv(65536):
                pass
        assert wait_for(lambda: marker in self.log_path.read_text(errors="replace"), TIMEOUT), \
            f"no access log line for {marker} (a quiet server, -q, has no log)"
        return self.log_path.read_text(errors="replace")


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PYTHONUNBUFFERED"] = "1"
    return env


@contextlib.contextmanager
def file_server(directory: str | os.PathLike[str], *args: str,
                env: dict[str, str] | None = None) -> Iterator[FileServer]:
    """Run ``python -m minihttp 0 -b 127.0.0.1 -d DIRECTORY ARGS``; stop it (bounded) on exit."""
    log_dir = tempfile.mkdtemp(prefix="minihttp-browser-")
    log_path = Path(log_dir) / "stderr.log"
    with open(log_path, "w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "minihttp", "0", "-b", "127.0.0.1", "-d", str(directory),
             *args],
            env={**_env(), **(env or {})}, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        assert proc.stdout is not None
        line = ""
        with selectors.DefaultSelector() as sel:
            sel.register(proc.stdout, selectors.EVENT_READ)
            if sel.select(TIMEOUT):
                line = proc.stdout.readline()
        m = re.search(r"(https?://127\.0\.0\.1:(\d+))/", line)
        if not m:
            time.sleep(0.2)
            raise AssertionError(f"the server did not start: first line {line!r}; "
                                 f"stderr: {log_path.read_text(errors='replace')[-2000:]!r}")
        yield FileServer(m.group(1), int(m.group(2)), log_path, proc)
    finally:
        stop_process(proc)
        if proc.stdout is not None:
            proc.stdout.close()
        shutil.rmtree(log_dir, ignore_errors=True)


# -- a page that fetches (cross-origin requests) ----------------------------------------------

#: ``page.html?url=U&init=JSON``: runs ``fetch(U, JSON)`` and writes into ``#out`` either
#: ``ok STATUS BODY`` or ``error NAME: MESSAGE``. Serve it from one server and fetch from
#: another to test CORS as a browser enforces it.
FETCH_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>cross-origin</title></head>
<body><pre id="out">pending</pre>
<script>
const q = new URLSearchParams(location.search);
const init = JSON.parse(q.get('init'));
fetch(q.get('url'), init)
  .then(r => r.text().then(t => 'ok ' + r.status + ' ' + t))
  .catch(e => 'error ' + e.name + ': ' + e.message)
  .then(t => { document.getElementById('out').textContent = t; });
</script></body></html>
"""


def run_fetch(browser: Any, page: FileServer, url: str, init: dict[str, Any]) -> str:
    """Open ``page``'s page.html (FETCH_PAGE), let it fetch ``url`` with ``init``; what it wrote ('ok STATUS BODY' or
    'error NAME: MESSAGE')."""
    browser.get(page.url + "/page.html?" + urlencode({"url": url, "init": json.dumps(init)}))
    return str(wait_until(
        browser,
        lambda d: (t := d.execute_script("return document.getElementById('out').textContent"))
        != "pending" and t,
        "the page's fetch to finish"))


def requests_seen(server: FileServer, method: str, path: str) -> list[int]:
    """Status codes of ``METHOD path`` lines in the server's access log."""
    pattern = re.compile(rf'"{method} {re.escape(path)} HTTP/1\.1" (\d{{3}})')
    return [int(m) for m in pattern.findall(server.log())]
