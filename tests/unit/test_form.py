"""Form bodies: the same bytes as urllib's urlencode (what requests sends), for any text."""

from __future__ import annotations

from urllib.parse import urlencode

from hypothesis import given
from hypothesis import strategies as st

from magnetd.delivery.form import encode, quote_plus


@given(st.dictionaries(st.text(), st.text(), max_size=5))
def test_a_form_is_encoded_exactly_as_urlencode_does(fields: dict[str, str]) -> None:
    assert encode(fields) == urlencode(fields)


def test_a_magnet_keeps_its_reserved_characters_quoted() -> None:
    uri = "magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=Fa%C3%A7ade é+1&tr=udp://t:80/a?b"
    assert quote_plus(uri) == urlencode({"u": uri})[2:]
    assert encode({"urls": "a b\nc", "category": "tv"}) == "urls=a+b%0Ac&category=tv"
