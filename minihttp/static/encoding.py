"""Pick a precompressed sibling from ``Accept-Encoding`` (RFC 9110 section 12.5.3), no I/O.

Rules of this module:

* No ``Accept-Encoding`` field means identity: RFC 9110 allows any coding then, but old or
  scripted clients that send nothing usually cannot decode one.
* A coding is acceptable when listed with q > 0, or covered by ``*`` with q > 0; ``q=0``
  refuses it. ``x-gzip`` is gzip (section 8.4.1.3).
* Identity stays acceptable unless refused (``identity;q=0``, or ``*;q=0`` without it); a
  compressed sibling is chosen when its q is at least identity's. Ties between codings go to
  the order of ``available`` (smaller first: br before gzip).
* A malformed element (bad q) is skipped, not fatal.
"""

from __future__ import annotations

import re

__all__ = ["choose_cached", "choose_encoding"]

# qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] ) (RFC 9110 section 12.4.2)
_QVALUE = re.compile(r"(?:0(?:\.\d{0,3})?|1(?:\.0{0,3})?)\Z")
_ALIASES = {"x-gzip": "gzip", "x-compress": "compress"}


def _preferences(accept: str) -> dict[str, float]:
    prefs: dict[str, float] = {}
    for element in accept.split(","):
        name, *params = element.split(";")
        name = name.strip(" \t").lower()
        if not name:
            continue
        q = 1.0
        valid = True
        for param in params:
            key, _, value = param.partition("=")
            if key.strip(" \t").lower() == "q":
                value = value.strip(" \t")
                if not _QVALUE.match(value):
                    valid = False
                    break
                q = float(value)
        if valid:
            prefs[_ALIASES.get(name, name)] = q
    return prefs


def choose_encoding(accept: str | None, available: list[str]) -> str | None:
    """The content coding to serve from ``available``, or None for the identity file."""
    if accept is None or not available:
        return None
    prefs = _preferences(accept)
    star = prefs.get("*")
    identity_q = prefs.get("identity", 1.0 if star is None or star > 0 else 0.0)
    best: str | None = None
    best_q = 0.0
    for coding in available:
        q = prefs.get(coding, star if star is not None else 0.0)
        if q > best_q:
            best, best_q = coding, q
    if best is not None and best_q >= identity_q:
        return best
    return None


#: (Accept-Encoding, codings) -> the chosen coding; bounded (keyed on request values).
_choices: dict[tuple[str | None, tuple[str, ...]], str | None] = {}
_CHOICES_MAX = 512


def choose_cached(accept: str | None, codings: tuple[str, ...]) -> str | None:
    """:func:`choose_encoding`, memoized (a pure function; bounded by clearing)."""
    key = (accept, codings)
    try:
        return _choices[key]
    except KeyError:
        pass
    chosen = choose_encoding(accept, list(codings))
    if len(_choices) >= _CHOICES_MAX:
        _choices.clear()
    _choices[key] = chosen
    return chosen
