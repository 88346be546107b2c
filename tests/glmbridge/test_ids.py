"""Random ids: their shape, and base62 characters drawn without bias."""

from __future__ import annotations

import re
from collections import Counter

from glmbridge import ids


def test_ids_have_their_prefix_and_24_base62_characters() -> None:
    for make, prefix in ((ids.new_message_id, "msg_"), (ids.new_request_id, "req_"),
                         (ids.new_tool_use_id, "toolu_")):  # fmt: skip
        made = {make() for _ in range(1000)}
        assert len(made) == 1000
        assert all(re.fullmatch(re.escape(prefix) + "[0-9A-Za-z]{24}", m) for m in made)


def test_every_base62_character_is_equally_likely() -> None:
    # 62 characters, 24,000 ids: 9,290 draws each expected. A byte taken modulo 62 would
    # favour the first 8 characters by 5/4 (~11,600 draws each); this bound catches that
    # with room to spare (the binomial sd is ~96).
    counts = Counter("".join(ids.new_request_id()[4:] for _ in range(24_000)))
    assert len(counts) == 62
    assert max(counts.values()) < 9_290 * 1.06
    assert min(counts.values()) > 9_290 * 0.94
