"""Function tools the end-to-end tests offer: Anthropic's shape, and OpenAI Chat's from it."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["CLOCK", "WEATHER", "function_tool"]


def _tool(name: str, description: str, argument: str) -> dict[str, Any]:
    """An Anthropic tool with one required string argument."""
    return {
        "name": name,
        "description": description,
        "input_schema": {
            "type": "object",
            "properties": {argument: {"type": "string"}},
            "required": [argument],
        },
    }


WEATHER = _tool("get_weather", "Current weather for a place.", "location")
CLOCK = _tool("get_time", "Current time in a timezone.", "timezone")


def function_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """An Anthropic tool as an OpenAI Chat ``{"type": "function", …}`` tool."""
    return {
        "type": "function",
        "function": {
            "name": tool["name"],
            "description": tool["description"],
            "parameters": copy.deepcopy(tool["input_schema"]),
        },
    }
