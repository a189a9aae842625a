"""The WebAPI's ``application/x-www-form-urlencoded`` forms: their fields, and their bodies byte
for byte as ``requests`` sends them, made fast. Pure.

``requests`` encodes ``data={...}`` with :func:`urllib.parse.urlencode`, whose
``quote_plus`` handles each character in Python: 3-11 ms per ``torrents/add`` of
1,000 magnets, on the courier's thread and holding the GIL the thread that moves
files needs. :func:`encode` gives the same bytes with one ``str.replace`` per
distinct character that needs quoting (a handful in a list of magnets).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping

from magnetd.model import AddOptions

Form = dict[str, str]

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


_FLAGS = {  # boolean options: config key -> torrents/add fields (several where versions differ)
    "paused": ("paused", "stopped"),  # 4.x reads paused, 5.x stopped
    "skip_checking": ("skip_checking", "seedMode"),  # seedMode: its name after 5.2
    "sequential": ("sequentialDownload",),
    "first_last_piece": ("firstLastPiecePrio",),
    "auto_tmm": ("autoTMM",),
}
_VALUES = {  # other options: config key -> torrents/add field
    "category": "category",
    "savepath": "savepath",
    "content_layout": "contentLayout",
    "rename": "rename",
    "ratio_limit": "ratioLimit",
    "seeding_time_limit": "seedingTimeLimit",
    "up_limit": "upLimit",
    "dl_limit": "dlLimit",
    "stop_condition": "stopCondition",
}


def options_form(options: AddOptions) -> Form:
    """The ``torrents/add`` form fields for ``options`` (only those that are set).

    A ``savepath`` without ``auto_tmm`` also sends ``autoTMM=false``: with automatic
    torrent management on, qBittorrent ignores ``savepath``.
    """
    form: Form = {}
    for key, name in _VALUES.items():
        value = getattr(options, key)
        if value is not None:
            form[name] = str(value)
    if options.tags:
        form["tags"] = ",".join(options.tags)
    for key, names in _FLAGS.items():
        flag = getattr(options, key)
        if flag is not None:
            form.update(dict.fromkeys(names, "true" if flag else "false"))
    if options.savepath is not None and options.auto_tmm is None:
        form["autoTMM"] = "false"
    return form


def hashes_form(ids: Collection[str]) -> str:
    """The urlencoded body ``hashes=<id>|<id>…`` of ``torrents/info`` for ``ids``, sorted.

    Ids are hex digits (or base32 letters): when nothing else is there, only the ``|``
    between them is quoted, with one ``replace`` (:func:`quote_plus` makes a set of the
    ~41,000 characters of 1,000 ids first). Anything else is quoted in full.
    """
    joined = "|".join(sorted(ids))
    if made_of(joined, _ID_CHARACTERS):
        return "hashes=" + joined.replace("|", "%7C")
    return encode({"hashes": joined})


_ID_CHARACTERS = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz|"


def made_of(text: str, characters: bytes) -> bool:
    """Whether every character of ``text`` is one of the ASCII ``characters`` (one pass in C)."""
    return text.isascii() and not text.encode("ascii").translate(None, characters)
