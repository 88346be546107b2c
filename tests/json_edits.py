"""Edits of JSON values by dotted path, for the stream-grammar tests' invalid cases and their
mutation fuzzing (``choices.0.delta``, ``candidates.0.index``)."""

from __future__ import annotations

import copy
from typing import Any

__all__ = ["DROP", "json_paths", "with_value"]

DROP: Any = object()
"""As a value: remove the key instead of setting it."""


def with_value(frame: Any, path: str, value: Any) -> Any:
    """A copy of ``frame`` with ``value`` (or nothing, for :data:`DROP`) at ``path``."""
    out = copy.deepcopy(frame)
    *parents, last = path.split(".")
    node: Any = out
    for key in parents:
        node = node[int(key)] if isinstance(node, list) else node[key]
    if isinstance(node, list):
        node[int(last)] = value
    elif value is DROP:
        del node[last]
    else:
        node[last] = value
    return out


def json_paths(node: Any, prefix: str = "") -> list[str]:
    """Every dotted path in ``node`` (object keys and list indices), parents first."""
    if isinstance(node, dict):
        items = list(node.items())
    elif isinstance(node, list):
        items = list(enumerate(node))
    else:
        return []
    out = []
    for key, value in items:
        path = f"{prefix}{key}"
        out.append(path)
        out += json_paths(value, path + ".")
    return out
