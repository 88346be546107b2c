"""Scheduling classes from what Claude Code really sends (recorded requests)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from glmbridge import ir
from glmbridge.priority import Priority, classify
from glmbridge.protocols import anthropic as ac

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "claude_code"


def _load(name: str) -> ir.Request:
    return ac.decode_request((FIXTURES / name).read_bytes())


def _subagent_of(req: ir.Request) -> ir.Request:
    """What Claude Code sends for a subagent: its own prompt and no Agent tool."""
    tools = [t for t in req.tools if t.name != "Agent"]
    system = [ir.TextBlock(text="You are an agent for Claude Code. Complete the task.")]
    messages = [m for m in req.messages if m.role != "system"]
    return ir.Request(
        model=req.model, messages=messages, system=system, tools=tools,
        max_tokens=req.max_tokens, user_id=req.user_id,
    )  # fmt: skip


@pytest.mark.parametrize(
    "name", ["request_main.json", "request_main_glm_env.json", "request_tool_result.json",
             "request_tool_use_turn.json", "request_bare.json"],
)  # fmt: skip
def test_recorded_main_turns_are_interactive(name: str) -> None:
    assert classify(_load(name), claude_code=True)[0] is Priority.INTERACTIVE


@pytest.mark.parametrize("name", ["request_small.json", "request_small_glm_env.json"])
def test_recorded_title_requests_are_background(name: str) -> None:
    # Both use a 32000/64000 max_tokens and a main model id: the title prompt decides.
    priority, reason = classify(_load(name), claude_code=True)
    assert (priority, reason) == (Priority.BACKGROUND, "title or summary call")


def test_subagent_without_agent_tool() -> None:
    main = _load("request_main.json")
    assert classify(_subagent_of(main), claude_code=True)[0] is Priority.SUBAGENT
    # the same body from another client is somebody's interactive turn
    assert classify(_subagent_of(main), claude_code=False)[0] is Priority.INTERACTIVE


def test_bare_mode_keeps_the_main_turn_interactive() -> None:
    # --bare offers Bash/Edit/Read only (no Agent tool) and a short system prompt, and
    # has no subagents: its exact tool set marks it.
    bare = _load("request_bare.json")
    assert {t.name for t in bare.tools} == {"Bash", "Edit", "Read"}
    assert classify(bare, claude_code=True)[0] is Priority.INTERACTIVE


def test_haiku_alias_and_tiny_max_tokens_are_background() -> None:
    msg = [ir.Message(role="user", content=[ir.TextBlock(text="hi")])]
    assert classify(ir.Request(model="claude-haiku-4-5", messages=msg))[0] is Priority.BACKGROUND
    tiny = ir.Request(model="glm-4.7", messages=msg, max_tokens=64)
    assert classify(tiny) == (Priority.BACKGROUND, "tiny max_tokens")
    assert classify(ir.Request(model="glm-4.7", messages=msg))[0] is Priority.INTERACTIVE


def test_header_wins() -> None:
    small = _load("request_small.json")
    assert classify(small, header="Interactive") == (Priority.INTERACTIVE, "header")
    assert classify(small, header="nonsense")[0] is Priority.BACKGROUND


def test_recordings_are_what_the_rules_assume() -> None:
    main = json.loads((FIXTURES / "request_main.json").read_text())
    assert "Agent" in {t["name"] for t in main["tools"]}
    assert "You are an interactive agent" in main["system"][2]["text"]
    small = json.loads((FIXTURES / "request_small.json").read_text())
    assert small["tools"] == [] and "title" in small["system"][2]["text"]
