"""Unit tests of minihttp.accesslog: formats, escaping, routing of error lines."""

from __future__ import annotations

import argparse
import json
import logging
from typing import Any

import pytest

from minihttp.accesslog import ACCESS_PRESETS, AccessLogMixin, access_format, with_access_log
from minihttp.headers import Headers
from minihttp.server import BaseHTTPRequestHandler


class Fake:
    """What the mix-in reads from a handler."""

    command = "GET"
    path = "/p\x1bq"
    request_version = "HTTP/1.1"

    def __init__(self) -> None:
        self.headers = Headers([("User-Agent", "ua\x07"), ("Host", "h")])

    def address_string(self) -> str:
        return "192.0.2.1"

    def log_date_time_string(self) -> str:
        return "01/Jan/2026 00:00:00"


class Logged(AccessLogMixin, Fake):
    pass


@pytest.fixture
def records() -> Any:
    got: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            got.append(record)

    keep = Keep()
    loggers = [logging.getLogger(n) for n in ("minihttp.access", "minihttp.error")]
    old = [(lg.level, lg.propagate) for lg in loggers]
    for lg in loggers:
        lg.addHandler(keep)
        lg.setLevel(logging.INFO)
    yield got
    for lg, (level, _propagate) in zip(loggers, old, strict=True):
        lg.removeHandler(keep)
        lg.setLevel(level)


def test_template_fields_and_control_escaping(records: Any) -> None:
    handler = Logged()
    handler.access_format = access_format("{remote} {method} {path} {status} {size} {agent} "
                                          "{host} {duration_ms}")
    handler.log_message('"%s" %s %s', "GET /p HTTP/1.1", "200", "12")
    (record,) = records
    assert record.name == "minihttp.access"
    assert record.getMessage() == "192.0.2.1 GET /p\\x1bq 200 12 ua\\x07 h -"


def test_json_lines(records: Any) -> None:
    handler = Logged()
    handler.access_format = access_format("json")
    handler._started = 1.0
    handler.log_message('"%s" %s %s', "GET /p HTTP/1.1", "404", "-")
    data = json.loads(records[0].getMessage())
    assert data["status"] == 404 and data["size"] == "-" and data["path"] == "/p\x1bq"
    assert data["agent"] == "ua\x07" and isinstance(data["duration_ms"], float)


def test_other_lines_go_to_the_error_log(records: Any) -> None:
    handler = Logged()
    handler.access_format = access_format("combined")
    handler.log_message("code %d, message %s", 404, "Not Found\x1b")
    (record,) = records
    assert record.name == "minihttp.error"
    assert record.getMessage().endswith("code 404, message Not Found\\x1b")


def test_presets_and_bad_templates() -> None:
    assert access_format("common") == ACCESS_PRESETS["common"]
    assert access_format("json") == "json"
    for bad in ("{nope}", "{", "{0}"):
        with pytest.raises(argparse.ArgumentTypeError):
            access_format(bad)


def test_with_access_log_keeps_the_default_handler() -> None:
    assert with_access_log(BaseHTTPRequestHandler, ACCESS_PRESETS["common"]) is (
        BaseHTTPRequestHandler)
    cls = with_access_log(BaseHTTPRequestHandler, ACCESS_PRESETS["combined"])
    assert issubclass(cls, AccessLogMixin) and issubclass(cls, BaseHTTPRequestHandler)
