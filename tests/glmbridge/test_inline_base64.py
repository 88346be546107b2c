"""glmbridge.inline_base64: every spelling of base64 clients send -> one canonical form."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glmbridge.errors import ClientRequestError
from glmbridge.inline_base64 import decode_base64, normalize_base64


@given(st.binary(max_size=64))
def test_every_spelling_normalises_to_standard_padded_base64(data: bytes) -> None:
    canonical = base64.b64encode(data).decode()
    spellings = [
        canonical,
        canonical.rstrip("="),
        base64.urlsafe_b64encode(data).decode(),
        base64.urlsafe_b64encode(data).decode().rstrip("="),
        "data:image/png;base64," + canonical,
        base64.encodebytes(data).decode(),
    ]
    for spelling in spellings:
        assert normalize_base64(spelling, "p") == canonical
        assert decode_base64(spelling, "p") == data


@pytest.mark.parametrize("bad", ["A", "@@@@", "ab!d", "é===", "AAAA=AAA", "data:x;base64,A"])
def test_what_is_not_base64_is_a_client_error_naming_the_part(bad: str) -> None:
    with pytest.raises(ClientRequestError) as caught:
        normalize_base64(bad, "contents.0.parts.1.inlineData.data")
    assert caught.value.path == "contents.0.parts.1.inlineData.data"
    assert "base64" in str(caught.value)
