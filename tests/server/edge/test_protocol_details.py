"""Protocol details the official SDKs hold glmbridge to (issue 23, item 9)."""

from __future__ import annotations

import anthropic
import pytest

from tests.support.servers import RunningServer

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("max_tokens", [0, -1])
def test_max_tokens_below_one_is_a_400_on_the_anthropic_door(
    bridge: RunningServer, sim: RunningServer, max_tokens: int
) -> None:
    before = len(sim.app.state.requests)
    sdk = anthropic.Anthropic(base_url=bridge.url, api_key="x", max_retries=0)
    with sdk, pytest.raises(anthropic.BadRequestError) as caught:
        sdk.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=max_tokens,
            messages=[{"role": "user", "content": "hi"}],
        )
    assert caught.value.status_code == 400
    assert "max_tokens" in str(caught.value)
    assert len(sim.app.state.requests) == before  # never sent upstream
