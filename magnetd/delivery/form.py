"""``application/x-www-form-urlencoded`` bodies, byte for byte what ``requests`` sends, made fast.

``requests`` encodes ``data={...}`` with :func:`urllib.parse.urlencode`, whose
``quote_plus`` handles each character in Python: 3-11 ms per ``torrents/add`` of
1,000 magnets, on the courier's thread and holding the GIL the thread that moves
files needs. :func:`encode` gives the same bytes with one ``str.replace`` per
distinct character that needs quoting (a handful in a list of magnets).
"""

from __future__ import annotations

from collections.abc import Mapping

_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-~")
_FIRST, _LAST = ("%", "+"), " "  # "%" and "+" before the others bring theirs, " " (to "+") after


def quote_plus(value: str) -> str:
    """:func:`urllib.parse.quote_plus` with ``safe=""``: UTF-8, spaces as ``+``.

    Each UTF-8 byte is one character of the latin-1 text, so every byte that needs
    quoting is a character replaced by its ``%XX``.
    """
    text = value.encode("utf-8").decode("latin-1")
    unsafe = set(text) - _SAFE
    if not unsafe:
        return text
    rest = sorted(unsafe - {*_FIRST, _LAST})
    for char in [c for c in _FIRST if c in unsafe] + rest:
        text = text.replace(char, f"%{ord(char):02X}")
    return text.replace(_LAST, "+") if _LAST in unsafe else text


def encode(fields: Mapping[str, str]) -> str:
    """The urlencoded body of ``fields``, in their order."""
    return "&".join(f"{quote_plus(key)}={quote_plus(value)}" for key, value in fields.items())
