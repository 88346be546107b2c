"""previous_response_id: a 400 by default; with responses_store, the conversation continues."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import openai
import pytest
from starlette.applications import Starlette

from glmbridge_server.edge.app import create_app
from glmbridge_server.settings import Settings
from glmbridge_server.tools.responses_store import ResponseStore
from tests.support.servers import RunningServer
from tests.support.simulator import chats

pytestmark = pytest.mark.e2e


def sdk(server: RunningServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key="x", max_retries=0)


def test_previous_response_id_is_a_clear_400_without_a_store(bridge: RunningServer) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        sdk(bridge).responses.create(model="glm-4.7", input="hi", previous_response_id="resp_x")
    body: Any = caught.value.body
    assert body["param"] == "previous_response_id"
    assert "store" in body["message"]


@pytest.mark.parametrize("stream", [False, True])
def test_a_stored_conversation_continues(
    start_server: Callable[[Starlette], RunningServer],
    sim: RunningServer,
    bridge_settings: Callable[..., Settings],
    stream: bool,
) -> None:
    server = start_server(create_app(bridge_settings(sim.url, responses_store=2)))
    client = sdk(server)
    if stream:
        with client.responses.stream(model="glm-4.7", input="my name is Ada",
                                     reasoning={"summary": "auto"}) as events:  # fmt: skip
            first = events.get_final_response()
    else:
        first = client.responses.create(model="glm-4.7", input="my name is Ada",
                                        reasoning={"summary": "auto"})  # fmt: skip
    second = client.responses.create(
        model="glm-4.7", input="what is my name?", previous_response_id=first.id
    )
    assert second.status == "completed"
    messages = chats(sim)[-1]["messages"]
    texts = [m["content"] for m in messages if m["role"] in ("user", "assistant")]
    assert texts == ["my name is Ada", "You said: my name is Ada", "what is my name?"]
    # GLM's reasoning of the first answer came back with it
    assert messages[1]["reasoning_content"].startswith("\nThe user sent")
    # store: false is not kept
    third = client.responses.create(model="glm-4.7", input="forget me", store=False)
    with pytest.raises(openai.BadRequestError):
        client.responses.create(model="glm-4.7", input="x", previous_response_id=third.id)


def test_the_store_is_bounded() -> None:
    store = ResponseStore(2)
    for rid in ("a", "b", "c"):
        store.put(rid, [])
    assert store.get("a") is None and store.get("b") == [] and len(store) == 2
    store.put("d", [])  # "b" was used last: "c" goes
    assert store.get("c") is None and store.get("b") == []
