"""The Responses stream's response-object events (created, in_progress, completed, failed)
framed around the object's JSON (issue 22), byte for byte as encoding the whole event."""

from __future__ import annotations

from typing import Any

import msgspec
from hypothesis import given, settings
from hypothesis import strategies as st

from glmbridge.protocols.responses.door_stream import StreamEncoder

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=10,
)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.text(max_size=6), _json, max_size=4),
       st.lists(st.sampled_from(["response.created", "response.in_progress",
                                 "response.completed", "response.failed"]), min_size=1,
                max_size=3),
       st.integers(0, 10_000))  # fmt: skip
def test_response_events_are_framed_as_encoded_events(
    obj: dict[str, Any], kinds: list[str], seq: int
) -> None:
    fast, general = (StreamEncoder(model="m", echo={}, created_at=0) for _ in range(2))
    fast._seq = general._seq = seq
    framed = fast._response_events(msgspec.json.encode(obj), *kinds)
    encoded = b"".join(general._event(kind, {"response": obj}) for kind in kinds)
    assert framed == encoded
    assert fast._seq == general._seq == seq + len(kinds)
