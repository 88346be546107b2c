"""The error bodies the doors answer with, checked for their exact shape."""

from __future__ import annotations

from typing import Any

import httpx2

__all__ = ["assert_openai_error"]


def assert_openai_error(response: httpx2.Response, status: int) -> dict[str, Any]:
    """``response`` is an OpenAI-shaped JSON error with ``status``; returns its ``error``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}, body
    error: dict[str, Any] = body["error"]
    assert set(error) == {"message", "type", "param", "code"}
    assert isinstance(error["message"], str) and error["message"]
    return error
