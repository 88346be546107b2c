"""Example values for a JSON Schema: what the simulated model puts in a tool call's arguments
(and in a JSON-mode answer), so that a client which validates them (Claude Code, Codex and
gemini-cli all do) accepts the call, and a demo shows plausible values, not placeholders.

:func:`example_for` returns a value valid for the schema whenever the schema is satisfiable
within the keywords it understands: ``type`` (one or a list), ``enum``, ``const``,
``$ref`` (``#/$defs/…``, ``#/definitions/…``), ``anyOf``/``oneOf`` (the first workable
branch), ``allOf`` (merged), strings (``minLength``, ``maxLength``, ``pattern``, ``format``:
date-time, date, time, email, uri, uuid, ipv4, ipv6, hostname), numbers (``minimum``,
``maximum``, both ``exclusive*`` spellings, ``multipleOf``), arrays (``items``,
``prefixItems``, ``minItems``, ``maxItems``, ``uniqueItems``) and objects (``properties``,
``required``, ``additionalProperties``, ``minProperties``). Strings prefer a value that
fits the property's name (``city`` -> Paris, ``url`` -> https://example.com) when it meets
the constraints. Independent of ``glmbridge``, like the rest of the simulator.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["example_for"]

# Sensible values by (a word of) the property name; used only when they meet the schema.
_HINTS: tuple[tuple[tuple[str, ...], str], ...] = (
    (("city", "location", "place", "destination"), "Paris"),
    (("country",), "France"),
    (("timezone", "tz"), "Europe/Paris"),
    (("url", "uri", "link", "href", "website"), "https://example.com"),
    (("email", "mail"), "user@example.com"),
    (("command", "cmd", "script"), "ls"),
    (("pattern", "glob"), "**/*.py"),
    (("regex",), "TODO"),
    # A harmless absolute path: Claude Code's file tools require absolute paths, and a
    # demo may run with permissions skipped.
    (("path", "file", "filename", "dir", "directory", "cwd"), "/tmp/glmbridge-demo.txt"),
    (("query", "search", "question", "prompt", "q"), "GLM models"),
    (("language", "lang"), "en"),
    (("unit", "units"), "celsius"),
    (("date", "day"), "2026-01-01"),
    (("name", "title", "label"), "example"),
    (("id", "key", "identifier"), "id-1"),
    (("description", "reason", "summary"), "A short description"),
    (("content", "text", "body", "message", "input"), "Hello from the GLM simulator"),
)
_FORMATS: dict[str, str] = {
    "date-time": "2026-01-01T12:00:00Z",
    "date": "2026-01-01",
    "time": "12:00:00Z",
    "email": "user@example.com",
    "idn-email": "user@example.com",
    "uri": "https://example.com",
    "url": "https://example.com",
    "iri": "https://example.com",
    "uri-reference": "https://example.com",
    "uuid": "123e4567-e89b-12d3-a456-426614174000",
    "ipv4": "192.0.2.1",
    "ipv6": "2001:db8::1",
    "hostname": "example.com",
    "idn-hostname": "example.com",
    "duration": "P1D",
}
_TYPE_ORDER = ("object", "array", "string", "integer", "number", "boolean", "null")
_MAX_DEPTH = 12


def example_for(schema: Any, name: str = "", *, root: Any = None, _depth: int = 0) -> Any:
    """A value valid for ``schema`` (see the module docstring), shaped by the name ``name``.

    Args:
        schema: a JSON Schema (a non-dict, or ``True``, allows anything).
        name: the property the value is for; picks a sensible string.
        root: the document ``$ref``s resolve against (default: ``schema`` itself).
    """
    root = schema if root is None else root
    if not isinstance(schema, dict) or _depth > _MAX_DEPTH:
        return _hint(name) or "example"
    schema = _resolve(schema, root)
    if "const" in schema:
        return schema["const"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    if isinstance(schema.get("allOf"), list):
        return example_for(_merge_all_of(schema, root), name, root=root, _depth=_depth + 1)
    for key in ("anyOf", "oneOf"):
        branches = schema.get(key)
        if isinstance(branches, list) and branches:
            base = {k: v for k, v in schema.items() if k != key}
            branch = _pick_branch(branches, root)
            return example_for({**base, **_resolve(branch, root)}, name, root=root,
                               _depth=_depth + 1)  # fmt: skip
    kind = _kind(schema)
    if kind == "object":
        return _object(schema, root, _depth)
    if kind == "array":
        return _array(schema, name, root, _depth)
    if kind == "string":
        return _string(schema, name)
    if kind in ("integer", "number"):
        return _number(schema, kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _hint(name) or "example"


def _resolve(schema: dict[str, Any], root: Any) -> dict[str, Any]:
    """Follow local ``$ref``s (a few hops); siblings of ``$ref`` are kept."""
    for _ in range(8):
        ref = schema.get("$ref")
        if not isinstance(ref, str) or not ref.startswith("#"):
            return schema
        target: Any = root
        for part in ref[1:].split("/")[1:]:
            part = part.replace("~1", "/").replace("~0", "~")
            target = target.get(part) if isinstance(target, dict) else None
        if not isinstance(target, dict):
            return {k: v for k, v in schema.items() if k != "$ref"}
        schema = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
    return schema


def _merge_all_of(schema: dict[str, Any], root: Any) -> dict[str, Any]:
    merged: dict[str, Any] = {k: v for k, v in schema.items() if k != "allOf"}
    for part in schema["allOf"]:
        if not isinstance(part, dict):
            continue
        part = _resolve(part, root)
        for key, value in part.items():
            if key == "properties" and isinstance(value, dict):
                merged["properties"] = {**merged.get("properties", {}), **value}
            elif key == "required" and isinstance(value, list):
                merged["required"] = [*merged.get("required", []), *value]
            else:
                merged.setdefault(key, value)
    return merged


def _pick_branch(branches: list[Any], root: Any) -> Any:
    """The first branch that is not only ``null`` (a value is more useful than none)."""
    for branch in branches:
        if isinstance(branch, dict) and _kind(_resolve(branch, root)) != "null":
            return branch
    return branches[0]


def _kind(schema: dict[str, Any]) -> str | None:
    kind = schema.get("type")
    if isinstance(kind, list):
        kinds = [k for k in kind if isinstance(k, str)]
        return next((k for k in _TYPE_ORDER if k in kinds), None)
    if isinstance(kind, str):
        return kind
    if "properties" in schema or "required" in schema:
        return "object"
    if "items" in schema or "prefixItems" in schema:
        return "array"
    return None


def _hint(name: str) -> str | None:
    words = {w for w in re.split(r"[^a-z0-9]+", _snake(name)) if w}
    for keys, value in _HINTS:
        if words & set(keys):
            return value
    return None


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def _string(schema: dict[str, Any], name: str) -> str:
    fmt = schema.get("format")
    pattern = schema.get("pattern")
    made = _from_pattern(pattern) if isinstance(pattern, str) else None
    known = _FORMATS.get(fmt) if isinstance(fmt, str) else None
    candidates = [c for c in (known, made, _hint(name), "example", "a", "0") if c] + [""]
    lo, hi = _low(schema.get("minLength")), _high(schema.get("maxLength"))
    for value in candidates:
        if _string_ok(value, schema, lo, hi):
            return value
    # Pad or cut the best candidate to the length limits (the pattern may not allow it).
    base = next((c for c in candidates if c), "x") or "x"
    value = (base * (lo // len(base) + 1))[: max(lo, len(base))]
    return value[:hi] if hi is not None else value


def _string_ok(value: str, schema: dict[str, Any], lo: int, hi: int | None) -> bool:
    if len(value) < lo or (hi is not None and len(value) > hi):
        return False
    pattern = schema.get("pattern")
    if isinstance(pattern, str):
        try:
            return re.search(pattern, value) is not None
        except re.error:
            return True  # not a pattern Python reads: nothing to check against
    return True


def _low(value: Any) -> int:
    """A ``min*`` count keyword (absent or invalid: 0)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    return math.ceil(value) if ok else 0


def _high(value: Any) -> int | None:
    """A ``max*`` count keyword (absent or invalid: no limit)."""
    ok = isinstance(value, int | float) and not isinstance(value, bool) and value >= 0
    return math.floor(value) if ok else None


def _number(schema: dict[str, Any], integer: bool) -> int | float:
    """A friendly number (1, or 1.5) moved inside the bounds and onto ``multipleOf``."""

    def num(key: str) -> float | None:
        v = schema.get(key)
        return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None

    lo, hi = num("minimum"), num("maximum")
    lo_open = schema.get("exclusiveMinimum") is True and lo is not None  # draft 4 flags
    hi_open = schema.get("exclusiveMaximum") is True and hi is not None
    if (v := num("exclusiveMinimum")) is not None and (lo is None or v >= lo):
        lo, lo_open = v, True
    if (v := num("exclusiveMaximum")) is not None and (hi is None or v <= hi):
        hi, hi_open = v, True

    def ok(v: float) -> bool:
        above = lo is None or (v > lo if lo_open else v >= lo)
        below = hi is None or (v < hi if hi_open else v <= hi)
        return above and below and (not integer or v.is_integer())

    step = num("multipleOf")
    unit = step if step and step > 0 else (1.0 if integer else None)
    value: float
    if unit is None:  # any real number in the range
        value = 1.5
        if not ok(value):
            if lo is not None and hi is not None:
                value = (lo + hi) / 2
            else:
                value = lo + 1 if lo is not None else (hi - 1 if hi is not None else 0.0)
    else:
        if lo is not None:
            k0 = math.ceil(lo / unit)
        elif hi is not None:
            k0 = min(math.floor(hi / unit), 1)
        else:
            k0 = max(1, round(1 / unit)) if unit < 1 else 1
        value = k0 * unit
        for j in range(256):  # the nearest multiples of the unit that fit
            for k in (k0 + j, k0 - j):
                if ok(k * unit):
                    value = k * unit
                    break
            else:
                continue
            break
    return int(value) if value.is_integer() else value


def _array(schema: dict[str, Any], name: str, root: Any, depth: int) -> list[Any]:
    lo, hi = _low(schema.get("minItems")), _high(schema.get("maxItems"))
    prefix = schema.get("prefixItems")
    prefix = prefix if isinstance(prefix, list) else []
    items = schema.get("items")
    count = min(max(lo, len(prefix), 1), hi if hi is not None else 1 << 30)
    if items is False:
        count = min(count, len(prefix))
    singular = name[:-1] if name.endswith("s") else name
    out: list[Any] = []
    for i in range(count):
        sub = prefix[i] if i < len(prefix) else items
        value = example_for(sub, singular, root=root, _depth=depth + 1)
        if schema.get("uniqueItems") and value in out:
            value = _variant(sub, value, len(out), root)
        out.append(value)
    if len(out) > lo and schema.get("uniqueItems") and len({repr(v) for v in out}) < len(out):
        out = out[: max(lo, 1)]
    return out


def _variant(sub: Any, value: Any, n: int, root: Any) -> Any:
    """Another value of ``sub`` than ``value`` (for ``uniqueItems``), if one is easy."""
    sub = _resolve(sub, root) if isinstance(sub, dict) else sub
    if isinstance(sub, dict) and isinstance(sub.get("enum"), list) and n < len(sub["enum"]):
        return sub["enum"][n]
    if isinstance(value, str):
        candidate = f"{value}{n + 1}"
        hi = _high(sub.get("maxLength")) if isinstance(sub, dict) else None
        ok = not isinstance(sub, dict) or _string_ok(candidate, sub, 0, hi)
        return candidate if ok else value
    if isinstance(value, bool) and n == 1:
        return False
    return value


def _object(schema: dict[str, Any], root: Any, depth: int) -> dict[str, Any]:
    props = schema.get("properties")
    props = props if isinstance(props, dict) else {}
    required = [r for r in schema.get("required") or () if isinstance(r, str)]
    names = list(dict.fromkeys(required)) or list(props)[:1]
    minimum = _low(schema.get("minProperties"))
    for extra in props:
        if len(names) >= minimum:
            break
        if extra not in names:
            names.append(extra)
    additional = schema.get("additionalProperties")
    out: dict[str, Any] = {}
    for key in names:
        sub = props.get(key, additional if isinstance(additional, dict) else True)
        out[key] = example_for(sub, key, root=root, _depth=depth + 1)
    n = 0
    while len(out) < minimum and additional is not False:
        n += 1
        key = f"extra{n}"
        out[key] = example_for(additional if isinstance(additional, dict) else True, key,
                               root=root, _depth=depth + 1)  # fmt: skip
    return out


def _from_pattern(pattern: str) -> str | None:
    """A short string that ``re.search(pattern)`` matches, built from the parsed pattern."""
    try:
        from re import _parser  # type: ignore[attr-defined]

        tree = _parser.parse(pattern)
        return "".join(_emit(tree, _parser))
    except Exception:  # an unusual construct: let the caller's candidates decide
        return None


def _emit(items: Any, p: Any) -> list[str]:
    out: list[str] = []
    for op, arg in items:
        if op is p.LITERAL:
            out.append(chr(arg))
        elif op is p.ANY:
            out.append("a")
        elif op is p.IN:
            out.append(_in_class(arg, p))
        elif op in (p.MAX_REPEAT, p.MIN_REPEAT, getattr(p, "POSSESSIVE_REPEAT", None)):
            low, _high, sub = arg
            out.extend(_emit(sub, p) * max(low, 0))
        elif op is p.SUBPATTERN:
            out.extend(_emit(arg[-1], p))
        elif op is p.BRANCH:
            out.extend(_emit(arg[1][0], p))
        elif op in (p.AT, p.ASSERT, p.ASSERT_NOT):
            continue
        elif op is p.NOT_LITERAL:
            out.append("a" if arg != ord("a") else "b")
        elif op is p.GROUPREF:
            continue
        else:
            raise ValueError(op)
    return out


def _in_class(items: Any, p: Any) -> str:
    negate = any(op is p.NEGATE for op, _ in items)
    if negate:
        banned = {chr(a) for op, a in items if op is p.LITERAL}
        return next(c for c in "axZ0_ " if c not in banned)
    for op, arg in items:
        if op is p.LITERAL:
            return chr(arg)
        if op is p.RANGE:
            return chr(arg[0])
        if op is p.CATEGORY:
            name = str(arg)
            if "NOT" in name:
                return "-" if "DIGIT" in name else "0" if "WORD" in name else "a"
            return "0" if "DIGIT" in name else " " if "SPACE" in name else "a"
    return "a"
