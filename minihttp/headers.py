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

from collections.abc import Iterable, Iterator

__all__ = ["Headers"]


class Headers:
    """Ordered, case-insensitive, multi-valued header fields (``email.message.Message``-like).

    ``_items`` is the list of ``(name, value)`` pairs in arrival order. ``_index`` maps a
    lower-cased name to its values and is what makes lookups O(1); the parser builds both in
    its single pass, so neither is rebuilt.
    """

    __slots__ = ("_index", "_items")

    _items: list[tuple[str, str]]
    _index: dict[str, list[str]]

    def __init__(self, items: Iterable[tuple[str, str]] | None = None) -> None:
        self._items = []
        self._index = {}
        if items is not None:
            for name, value in items:
                self[name] = value

    @classmethod
    def _from_parsed(cls, items: list[tuple[str, str]], index: dict[str, list[str]]) -> Headers:
        """Adopt lists the parser already built (no copy, no re-validation)."""
        self = cls.__new__(cls)
        self._items = items
        self._index = index
        return self

    # -- mapping surface ------------------------------------------------------------------

    def __getitem__(self, name: str) -> str | None:
        """First value of ``name`` or ``None`` (``Message`` returns ``None``, never raises)."""
        values = self._index.get(name.lower())
        return values[0] if values else None

    def get(self, name: str, default: str | None = None) -> str | None:
        """First value of ``name``, or ``default``."""
        values = self._index.get(name.lower())
        return values[0] if values else default

    def get_all(self, name: str, failobj: list[str] | None = None) -> list[str] | None:
        """Every value of ``name`` in arrival order, or ``failobj`` when there is none."""
        values = self._index.get(name.lower())
        return list(values) if values else failobj

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._index

    def __len__(self) -> int:
        return len(self._items)

    def __iter__(self) -> Iterator[str]:
        """Field names, in arrival order, repeated names repeated (as ``Message``)."""
        return (name for name, _ in self._items)

    def keys(self) -> list[str]:
        """Field names in arrival order."""
        return [name for name, _ in self._items]

    def values(self) -> list[str]:
        """Field values in arrival order."""
        return [value for _, value in self._items]

    def items(self) -> list[tuple[str, str]]:
        """``(name, value)`` pairs in arrival order."""
        return list(self._items)

    def __setitem__(self, name: str, value: str) -> None:
        """Append a field (``Message`` semantics: it does not replace)."""
        self._items.append((name, value))
        key = name.lower()
        values = self._index.get(key)
        if values is None:
            self._index[key] = [value]
        else:
            values.append(value)

    def __delitem__(self, name: str) -> None:
        """Remove every field called ``name``; a missing name is not an error."""
        key = name.lower()
        if self._index.pop(key, None) is not None:
            self._items = [(n, v) for n, v in self._items if n.lower() != key]

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
        for i, (n, _) in enumerate(self._items):
            if n.lower() == key:
                self._items[i] = (n, value)
                self._index[key][0] = value
                return
        raise KeyError(name)

    def copy(self) -> Headers:
        """An independent copy."""
        return Headers._from_parsed(list(self._items), {k: list(v) for k, v in self._index.items()})

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

    # -- text forms -----------------------------------------------------------------------------

    def as_string(self) -> str:
        """``Name: value`` lines joined by ``\\n`` plus a blank line (``str(Message)`` layout)."""
        return "".join(f"{name}: {value}\n" for name, value in self._items) + "\n"

    __str__ = as_string

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self._items == other._items
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable


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
