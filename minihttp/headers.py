"""Case-insensitive, multi-valued header fields: the object handlers see as ``self.headers``.

Code written for ``http.server`` treats ``self.headers`` as an ``email.message.Message``
(``http.client.parse_headers`` builds one). :class:`Headers` offers that surface without the
email package's parsing cost, because it is built once per request on the hot path.

Rules of this module:

* Fields are kept in arrival order, names exactly as sent; lookups compare names
  case-insensitively (RFC 9110 section 5.1: "Field names are case-insensitive").
* A name may repeat; ``h[name]`` and ``get`` give the first value (as ``Message`` does),
  ``get_all`` gives every value.
* ``h[name] = value`` *appends* (``Message.__setitem__`` semantics), ``del h[name]`` removes
  every field of that name and never raises.
* Values are ``str`` (bytes decoded as latin-1 by the parser, as ``http.client`` does).
* No validation here: the parser validates what arrives (:mod:`minihttp.http11`), and the
  response writer validates what leaves (``http11.validate_field``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator

__all__ = ["Headers"]

#: One field line of a block the parser has already validated (token name, colon, OWS,
#: value without CR/LF, CRLF): a plain split, linear because nothing here can fail.
_LINES = re.compile(r"([^:\r\n]+):[ \t]*([^\r\n]*)\r\n")


#: ``has_any`` search strings by name set (the sets are constants of the calling code).
_needles: dict[frozenset[str], tuple[str, ...]] = {}


class Headers:
    """Ordered, case-insensitive, multi-valued header fields (``email.message.Message``-like).

    ``_items`` is the list of ``(name, value)`` pairs in arrival order. ``_index`` maps a
    lower-cased name to its values (``_idx``) and is what makes lookups O(1). Both are made on first
    use: the parser hands over the validated field block (:func:`_from_block`) and many handlers
    never read a field, so a request that nobody asks about costs no per-field objects.
    """

    __slots__ = ("_block", "_idx", "_items")

    _block: str
    _items: list[tuple[str, str]] | None
    _idx: dict[str, list[str]] | None

    def __init__(self, items: Iterable[tuple[str, str]] | None = None) -> None:
        self._items = []
        self._idx = {}
        if items is not None:
            for name, value in items:
                self[name] = value

    @classmethod
    def _from_parsed(cls, items: list[tuple[str, str]], index: dict[str, list[str]]) -> Headers:
        """Adopt lists the parser already built (no copy, no re-validation)."""
        self = cls.__new__(cls)
        self._items = items
        self._idx = index
        return self

    def _fields(self) -> list[tuple[str, str]]:
        """``_items``, split from the block on first use."""
        items = self._items
        if items is None:
            block = self._block
            items = _LINES.findall(block)
            if " \r\n" in block or "\t\r\n" in block:
                items = [(name, value.rstrip(" \t")) for name, value in items]  # trailing OWS
            self._items = items
        return items

    def has_any(self, names: frozenset[str]) -> bool:
        """True if a field whose lower-cased name is in ``names`` is present.

        For checks such as "does this request carry any precondition or Range field": asked
        before the fields were split, it answers from the raw block (field names start
        lines, values hold no CR or LF) without building the list and index it would not
        otherwise need.
        """
        if self._items is None:
            needles = _needles.get(names)
            if needles is None:
                needles = tuple(f"\n{name}:" for name in names)
                if len(_needles) < 64:  # keyed by the callers' constant sets, not requests
                    _needles[names] = needles
            low = "\n" + self._block.lower()
            return any(needle in low for needle in needles)
        return not names.isdisjoint(self._lookup())

    @property
    def _index(self) -> dict[str, list[str]]:
        """Lower-cased name -> values (built on first use; read-only view for helpers)."""
        return self._lookup()

    def _lookup(self) -> dict[str, list[str]]:
        """``_idx``, built on first use."""
        index = self._idx
        if index is None:
            index = {}
            for name, value in self._fields():
                key = name.lower()
                values = index.get(key)
                if values is None:
                    index[key] = [value]
                else:
                    values.append(value)
            self._idx = index
        return index

    # -- mapping surface ------------------------------------------------------------------

    def __getitem__(self, name: str) -> str | None:
        """First value of ``name`` or ``None`` (``Message`` returns ``None``, never raises)."""
        values = (self._idx if self._idx is not None else self._lookup()).get(name.lower())
        return values[0] if values else None

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of ``name``, or ``default``."""
        values = (self._idx if self._idx is not None else self._lookup()).get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str, failobj: list[str] | None = None) -> list[str] | None:
        """Every value of ``name`` in arrival order, or ``failobj`` when there is none."""
        values = self._lookup().get(name.lower())
        return list(values) if values else failobj

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._lookup()

    def __len__(self) -> int:
        return len(self._fields())

    def __iter__(self) -> Iterator[str]:
        """Field names, in arrival order, repeated names repeated (as ``Message``)."""
        return (name for name, _ in self._fields())

    def keys(self) -> list[str]:
        """Field names in arrival order."""
        return [name for name, _ in self._fields()]

    def values(self) -> list[str]:
        """Field values in arrival order."""
        return [value for _, value in self._fields()]

    def items(self) -> list[tuple[str, str]]:
        """``(name, value)`` pairs in arrival order."""
        return list(self._fields())

    def __setitem__(self, name: str, value: str) -> None:
        """Append a field (``Message`` semantics: it does not replace)."""
        index = self._lookup()
        self._fields().append((name, value))
        key = name.lower()
        values = index.get(key)
        if values is None:
            index[key] = [value]
        else:
            values.append(value)

    def __delitem__(self, name: str) -> None:
        """Remove every field called ``name``; a missing name is not an error."""
        key = name.lower()
        if self._lookup().pop(key, None) is not None:
            self._items = [(n, v) for n, v in self._fields() if n.lower() != key]

    def add_header(self, name: str, value: str, **params: str | None) -> None:
        """Append a field with ``key="value"`` parameters (``Message.add_header``)."""
        parts = [value]
        for key, pvalue in params.items():
            key = key.replace("_", "-")
            if pvalue is None:
                parts.append(key)
            else:
                parts.append(f'{key}="{pvalue}"')
        self[name] = "; ".join(parts)

    def replace_header(self, name: str, value: str) -> None:
        """Replace the first field called ``name``; ``KeyError`` if absent (as ``Message``)."""
        key = name.lower()
        items = self._fields()
        for i, (n, _) in enumerate(items):
            if n.lower() == key:
                items[i] = (n, value)
                self._lookup()[key][0] = value
                return
        raise KeyError(name)

    def copy(self) -> Headers:
        """An independent copy."""
        return Headers._from_parsed(list(self._fields()),
                                    {k: list(v) for k, v in self._lookup().items()})

    # -- Content-Type helpers (RFC 9110 section 8.3) --------------------------------------------

    def get_content_type(self) -> str:
        """Lower-cased ``type/subtype``; ``text/plain`` when absent or invalid (as ``Message``)."""
        value = self.get("content-type")
        if value is None:
            return "text/plain"
        ctype = value.split(";", 1)[0].strip().lower()
        if ctype.count("/") != 1:
            return "text/plain"
        return ctype

    def get_content_maintype(self) -> str:
        """The part of :meth:`get_content_type` before the slash."""
        return self.get_content_type().split("/")[0]

    def get_content_subtype(self) -> str:
        """The part of :meth:`get_content_type` after the slash."""
        return self.get_content_type().split("/")[1]

    def get_params(
        self, failobj: list[tuple[str, str]] | None = None, header: str = "content-type"
    ) -> list[tuple[str, str]] | None:
        """``[(type, ''), (param, value), ...]`` of ``header`` (values unquoted), or ``failobj``."""
        value = self.get(header)
        if value is None:
            return failobj
        return _split_params(value)

    def get_param(
        self, param: str, failobj: str | None = None, header: str = "content-type",
        unquote: bool = True,
    ) -> str | None:
        """Value of parameter ``param`` of ``header`` (case-insensitive name), or ``failobj``.

        Like ``Message.get_param``, a parameter given without ``=`` yields ``''``.
        ``unquote`` is accepted for compatibility; values are always unquoted.
        """
        params = self.get_params(header=header)
        if not params:
            return failobj
        wanted = param.lower()
        for name, value in params[1:]:
            if name.lower() == wanted:
                return value
        return failobj

    def get_content_charset(self, failobj: str | None = None) -> str | None:
        """Lower-cased ``charset`` parameter of Content-Type, or ``failobj``."""
        charset = self.get_param("charset")
        return charset.lower() if charset else failobj

    def field_block(self) -> str | None:
        """The field lines exactly as the parser validated them (``Name: value`` CRLF each),
        while nothing has split or changed them; None otherwise (the fields were read or
        set one by one: use :meth:`items`). For code that maps whole blocks to a result it
        computed once (the proxy's fast path), so a block seen before costs no split."""
        return self._block if self._items is None else None

    # -- text forms -----------------------------------------------------------------------------

    def as_string(self) -> str:
        """``Name: value`` lines joined by ``\\n`` plus a blank line (``str(Message)`` layout)."""
        return "".join(f"{name}: {value}\n" for name, value in self._fields()) + "\n"

    __str__ = as_string

    def __repr__(self) -> str:
        return f"Headers({self._fields()!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._fields() == other._fields()
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable


_new = object.__new__


def _from_block(block: str) -> Headers:
    """Headers over CRLF-terminated field lines the parser has validated; split on first use.

    A module function rather than a classmethod: it runs once per request, and this way
    costs half as much.
    """
    self: Headers = _new(Headers)
    self._block = block
    self._items = self._idx = None
    return self


def _split_params(value: str) -> list[tuple[str, str]]:
    """Split ``type; a=1; b="x;y"`` into ``[('type', ''), ('a', '1'), ('b', 'x;y')]``.

    Semicolons inside quoted-strings (RFC 9110 section 5.6.4) do not split; backslash
    escapes inside quotes are resolved.
    """
    parts: list[str] = []
    buf: list[str] = []
    quoted = escaped = False
    for ch in value:
        if escaped:
            buf.append(ch)
            escaped = False
        elif quoted and ch == "\\":
            buf.append(ch)
            escaped = True
        elif ch == '"':
            buf.append(ch)
            quoted = not quoted
        elif ch == ";" and not quoted:
            parts.append("".join(buf))
            buf = []
        else:
            buf.append(ch)
    parts.append("".join(buf))
    result: list[tuple[str, str]] = [(parts[0].strip(), "")]
    for part in parts[1:]:
        part = part.strip()
        if not part:
            continue
        name, eq, pvalue = part.partition("=")
        pvalue = pvalue.strip()
        if len(pvalue) >= 2 and pvalue[0] == pvalue[-1] == '"':
            pvalue = _unquote(pvalue[1:-1])
        result.append((name.strip(), pvalue if eq else ""))
    return result


def _unquote(text: str) -> str:
    """Resolve quoted-pair backslash escapes (RFC 9110 section 5.6.4)."""
    if "\\" not in text:
        return text
    out: list[str] = []
    it = iter(text)
    for ch in it:
        out.append(next(it, "") if ch == "\\" else ch)
    return "".join(out)
