"""Uploading through the listing's form in Chromium (``--upload``; needs the ``upload`` branch).

The browser builds the multipart/form-data body itself (its own boundary, its own quoting of
file names, its own order of parts), follows the 303 back to the listing and shows the new
files: the way people will use the form, which no hand-made request in a unit test reproduces.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.browser import (
    FETCH_PAGE,
    FileServer,
    click_link,
    file_server,
    links,
    navigation_status,
    page_text,
    requests_seen,
    run_fetch,
    wait_until,
)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Path, FileServer]]:
    root = tmp_path / "served"
    (root / "inbox").mkdir(parents=True)
    (root / "inbox" / "already.txt").write_text("was here first\n")
    with file_server(root, "--upload") as server:
        yield root, server


@pytest.fixture
def picked(tmp_path: Path) -> list[Path]:
    """Two files to pick in the form: a text file with an odd name, a binary file of 300 KiB
    (several of the server's 64 KiB pieces, every byte value, not UTF-8)."""
    picked = tmp_path / "picked"
    picked.mkdir()
    text = picked / "résumé & notes 2.txt"
    text.write_text("first upload\nsecond line\n")
    blob = picked / "data.bin"
    blob.write_bytes(bytes(range(256)) * 1200 + os.urandom(7))
    return [text, blob]


def _choose_and_submit(browser: Any, files: list[Path], shot: Path | None = None) -> None:
    form = browser.find_element("css selector", "form[method=post]")
    chooser = form.find_element("css selector", "input[type=file]")
    # One send_keys with the paths on separate lines picks several files in a <input multiple>.
    chooser.send_keys("\n".join(str(f) for f in files))
    assert browser.execute_script("return arguments[0].files.length", chooser) == len(files)
    if shot is not None:
        browser.save_screenshot(str(shot))
    before = browser.execute_script("return performance.timeOrigin")
    form.find_element("css selector", "[type=submit]").click()
    wait_until(browser, lambda d: d.execute_script(
        "return document.readyState === 'complete' && performance.timeOrigin") not in (False, before),
        "the page after the upload to load")


def test_upload_two_files_through_the_form(browser: Any, served: tuple[Path, FileServer],
                                           picked: list[Path], shots: Path) -> None:
    root, server = served
    browser.get(server.url + "/inbox/")
    form = browser.find_element("css selector", "form[method=post]")
    assert form.get_attribute("enctype") == "multipart/form-data"
    _choose_and_submit(browser, picked, shots / "upload-form-chosen.png")
    browser.save_screenshot(str(shots / "upload-form-after.png"))
    # Post/Redirect/Get: back on the listing, which now shows both files.
    assert browser.current_url == server.url + "/inbox/"
    assert browser.title == "Index of /inbox/"
    assert {"résumé & notes 2.txt", "data.bin", "already.txt"} <= set(links(browser, within="tbody"))
    for f in picked:
        assert (root / "inbox" / f.name).read_bytes() == f.read_bytes(), f.name
    # Nothing else was left in the directory (no temporary file).
    assert sorted(os.listdir(root / "inbox")) == sorted(["already.txt", *(f.name for f in picked)])
    click_link(browser, "résumé & notes 2.txt", within="tbody")
    assert page_text(browser) == "first upload\nsecond line\n"
    # The upload is in the access log, one line per stored file.
    log = server.log()
    assert log.count("POST /inbox/ HTTP/1.1\" 303") == 1, log


def test_a_second_upload_of_the_same_name_is_refused(
        browser: Any, served: tuple[Path, FileServer], tmp_path: Path) -> None:
    root, server = served
    mine = tmp_path / "already.txt"
    mine.write_text("an impostor\n")
    browser.get(server.url + "/inbox/")
    _choose_and_submit(browser, [mine])
    # The browser shows the server's 409 page, which says why.
    assert browser.title == "Error response"
    assert "Error code: 409" in page_text(browser), page_text(browser)
    assert "exists" in page_text(browser), page_text(browser)
    assert (root / "inbox" / "already.txt").read_text() == "was here first\n"


def test_upload_only_auth_asks_when_uploading(browser: Any, tmp_path: Path) -> None:
    """``--auth-upload-only``: the listing is open; the form's POST is challenged, and
    stored once Chromium sends credentials."""
    user, password = "alice", "open sesame:42"
    site = tmp_path / "served"
    (site / "reports").mkdir(parents=True)
    picked = tmp_path / "report.txt"
    picked.write_text("signed\n")

    with file_server(site, "--upload", "--auth", f"{user}:{password}",
                     "--auth-upload-only") as server:
        browser.get(server.url + "/reports/")
        assert navigation_status(browser) == 200  # reading needs no password
        _choose_and_submit(browser, [picked])
        assert navigation_status(browser) == 401
        assert not (site / "reports" / "report.txt").exists()
        # The listing never challenged, so Chromium has no credentials to offer: send them.
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        browser.execute_cdp_cmd("Network.setExtraHTTPHeaders",
                                {"headers": {"Authorization": f"Basic {token}"}})
        browser.get(server.url + "/reports/")
        _choose_and_submit(browser, [picked])
        assert navigation_status(browser) == 200
        assert browser.title == "Index of /reports/"
        assert "report.txt" in links(browser, within="tbody")
        assert (site / "reports" / "report.txt").read_text() == "signed\n"
        assert f'127.0.0.1 - {user} [' in server.log()


def test_put_from_another_origin(browser: Any, tmp_path: Path) -> None:
    """A page on server A PUTs a file to server B (``--cors --upload``): a PUT is never
    "simple", so Chromium preflights; B's answer must allow PUT, then the file is stored."""
    a_root, b_root = tmp_path / "a", tmp_path / "b"
    a_root.mkdir()
    b_root.mkdir()
    (a_root / "page.html").write_text(FETCH_PAGE)
    init = {"method": "PUT", "body": "sent from page A\n",
            "headers": {"Content-Type": "text/plain"}}
    with file_server(a_root) as a, file_server(b_root, "--cors", "--upload") as b:
        out = run_fetch(browser, a, b.url + "/new.txt", init)
        assert out.startswith("ok 201"), out
        assert (b_root / "new.txt").read_text() == "sent from page A\n"
        assert len(requests_seen(b, "OPTIONS", "/new.txt")) == 1, b.log()
