"""Validators and conditional requests (RFC 9110 sections 8.8 and 13), without I/O.

A file's validators are a strong ``ETag`` built from its inode, size and modification time in
nanoseconds (any change of content through normal writes changes one of them), and its
``Last-Modified`` date in whole seconds. :func:`evaluate` applies the preconditions in the
order RFC 9110 section 13.2.2 prescribes and says whether the answer is 304, 412 or "go on";
:func:`if_range_matches` decides whether a ``Range`` is honoured (section 13.1.5).

Rules of this module:

* Malformed dates are ignored, as RFC 9110 sections 13.1.3 and 13.1.4 require.
* ``If-Match`` and ``If-Range`` use the strong comparison, ``If-None-Match`` the weak one
  (section 8.8.3.2): a weak tag never satisfies a strong comparison.
"""

from __future__ import annotations

import email.utils
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

__all__ = [
    "Validators",
    "evaluate",
    "http_date",
    "if_range_matches",
    "parse_http_date",
    "validators_for",
]

# entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE (RFC 9110 section 8.8.3); we read it leniently:
# any run without a double quote counts as the opaque tag.
_ETAG = re.compile(r'[ \t]*(W/)?("[^"]*")[ \t]*(?:,|\Z)')


@dataclass(frozen=True, slots=True)
class Validators:
    """The validators of one selected representation."""

    etag: str  # with its quotes, e.g. '"a1-2b-3c"'
    last_modified: int  # seconds since the epoch, whole (HTTP dates have no fraction)


def validators_for(st: os.stat_result, tag: str = "") -> Validators:
    """Build validators from a ``stat`` result; ``tag`` tells representations apart.

    A precompressed sibling has its own file and thus its own tag, but ``tag`` (e.g. "br")
    is added anyway so two encodings can never share an ETag (RFC 9110 section 8.8.3).
    """
    opaque = f"{st.st_ino:x}-{st.st_size:x}-{st.st_mtime_ns:x}"
    if tag:
        opaque += f"-{tag}"
    return Validators(f'"{opaque}"', int(st.st_mtime))


def http_date(timestamp: float) -> str:
    """IMF-fixdate, the preferred HTTP-date format (RFC 9110 section 5.6.7)."""
    return email.utils.formatdate(timestamp, usegmt=True)


def parse_http_date(value: str | None) -> int | None:
    """Seconds since the epoch for an HTTP-date, or None when it is not one."""
    if value is None or "," in value.partition(",")[2]:
        return None  # two members (two dates joined by a comma): RFC 9110 section 13.1.3
    try:
        parsed = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None or parsed.tzinfo is None:
        return None
    try:
        return int(parsed.timestamp())
    except (OverflowError, OSError, ValueError):
        return None


def _tags(value: str) -> list[tuple[bool, str]] | None:
    """``[(weak, opaque), ...]`` of a list of entity-tags; None means ``*``."""
    if value.strip(" \t") == "*":
        return None
    tags: list[tuple[bool, str]] = []
    pos = 0
    while pos < len(value):
        m = _ETAG.match(value, pos)
        if m is None:
            # Skip one garbage element: it matches nothing.
            comma = value.find(",", pos)
            if comma < 0:
                break
            pos = comma + 1
            continue
        tags.append((m.group(1) is not None, m.group(2)))
        pos = m.end()
    return tags


def _strong_match(value: str, etag: str) -> bool:
    tags = _tags(value)
    return tags is None or any(not weak and opaque == etag for weak, opaque in tags)


def _weak_match(value: str, etag: str) -> bool:
    tags = _tags(value)
    return tags is None or any(opaque == etag for _weak, opaque in tags)


def _joined(get_all: Callable[[str], list[str] | None], name: str) -> str | None:
    values = get_all(name)
    return ", ".join(values) if values else None


def evaluate(
    method: str, get_all: Callable[[str], list[str] | None], v: Validators
) -> int | None:
    """Apply the preconditions of RFC 9110 section 13.2.2, in its order.

    ``get_all(name)`` returns every value of a request field (``Headers.get_all``).
    Returns 412 or 304 when the precondition decides the answer, else None.
    """
    safe = method in ("GET", "HEAD")
    if_match = _joined(get_all, "If-Match")
    if if_match is not None:  # step 1
        if not _strong_match(if_match, v.etag):
            return 412
    else:  # step 2: If-Unmodified-Since only without If-Match
        since = parse_http_date(_joined(get_all, "If-Unmodified-Since"))
        if since is not None and v.last_modified > since:
            return 412
    if_none_match = _joined(get_all, "If-None-Match")
    if if_none_match is not None:  # step 3
        if _weak_match(if_none_match, v.etag):
            return 304 if safe else 412
    elif safe:  # step 4: If-Modified-Since only without If-None-Match, only for GET/HEAD
        since = parse_http_date(_joined(get_all, "If-Modified-Since"))
        if since is not None and v.last_modified <= since:
            return 304
    return None


def if_range_matches(value: str | None, v: Validators) -> bool:
    """True when a Range may be honoured given ``If-Range: value`` (RFC 9110 section 13.1.5).

    An entity-tag must match strongly; a date must equal Last-Modified exactly. Anything
    else (a weak tag, garbage) is false, which means "send the whole representation".
    """
    if value is None:
        return True
    value = value.strip(" \t")
    if value.startswith(('"', "W/")):
        return not value.startswith("W/") and value == v.etag
    date = parse_http_date(value)
    return date is not None and date == v.last_modified
