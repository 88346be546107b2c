"""A small JSON Schema validator for tests (no third-party dependency): the keywords tool
schemas use, with the semantics of JSON Schema 2020-12 (draft 4's boolean
``exclusiveMinimum``/``exclusiveMaximum`` too).

``schema_errors(value, schema)`` lists what is wrong (empty: valid). Unknown keywords are
ignored, as the specification says; ``format`` is checked for the common formats.
"""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["schema_errors"]

_FORMATS = {
    "date-time": r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)",
    "date": r"\d{4}-\d\d-\d\d",
    "time": r"\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)?",
    "email": r"[^@\s]+@[^@\s]+\.[^@\s]+",
    "uri": r"[A-Za-z][A-Za-z0-9+.-]*:\S+",
    "uuid": r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}",
    "ipv4": r"(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}",
    "hostname": r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9-]+)*",
}


def schema_errors(value: Any, schema: Any, root: Any = None, at: str = "$") -> list[str]:
    """Everything in ``value`` that ``schema`` rejects, as ``"<path>: <why>"`` lines."""
    root = schema if root is None else root
    if schema is True or schema == {}:
        return []
    if schema is False:
        return [f"{at}: no value is allowed here"]
    if not isinstance(schema, dict):
        return []
    errors: list[str] = []
    ref = schema.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        target: Any = root
        for part in ref[1:].split("/")[1:]:
            target = target[part.replace("~1", "/").replace("~0", "~")]
        errors += schema_errors(value, target, root, at)
    errors += _generic(value, schema, root, at)
    if _is_type(value, "string"):
        errors += _string(value, schema, at)
    if _is_type(value, "number"):
        errors += _number(value, schema, at)
    if isinstance(value, list):
        errors += _array(value, schema, root, at)
    if isinstance(value, dict):
        errors += _object(value, schema, root, at)
    return errors


def _is_type(value: Any, kind: str) -> bool:
    if kind == "null":
        return value is None
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "string":
        return isinstance(value, str)
    if kind == "array":
        return isinstance(value, list)
    if kind == "object":
        return isinstance(value, dict)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    return kind == "number" or float(value).is_integer()


def _generic(value: Any, schema: dict[str, Any], root: Any, at: str) -> list[str]:
    errors: list[str] = []
    kind = schema.get("type")
    kinds = kind if isinstance(kind, list) else [kind] if isinstance(kind, str) else []
    if kinds and not any(_is_type(value, k) for k in kinds):
        errors.append(f"{at}: {value!r} is not of type {kinds}")
    if "enum" in schema and not any(_same(value, e) for e in schema["enum"]):
        errors.append(f"{at}: {value!r} is not one of {schema['enum']}")
    if "const" in schema and not _same(value, schema["const"]):
        errors.append(f"{at}: {value!r} is not {schema['const']!r}")
    for sub in schema.get("allOf", ()):
        errors += schema_errors(value, sub, root, at)
    if "anyOf" in schema and all(schema_errors(value, s, root, at) for s in schema["anyOf"]):
        errors.append(f"{at}: matches no branch of anyOf")
    if "oneOf" in schema:
        matches = sum(not schema_errors(value, s, root, at) for s in schema["oneOf"])
        if matches != 1:
            errors.append(f"{at}: matches {matches} branches of oneOf, not exactly one")
    if "not" in schema and not schema_errors(value, schema["not"], root, at):
        errors.append(f"{at}: matches the 'not' schema")
    return errors


def _same(a: Any, b: Any) -> bool:
    """JSON equality: 1 == 1.0, but True != 1."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if _is_type(a, "number") and _is_type(b, "number"):
        return bool(a == b)
    return type(a) is type(b) and a == b


def _string(value: str, schema: dict[str, Any], at: str) -> list[str]:
    errors = []
    if len(value) < schema.get("minLength", 0):
        errors.append(f"{at}: shorter than minLength {schema['minLength']}")
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        errors.append(f"{at}: longer than maxLength {schema['maxLength']}")
    if "pattern" in schema and not re.search(schema["pattern"], value):
        errors.append(f"{at}: {value!r} does not match {schema['pattern']!r}")
    fmt = _FORMATS.get(schema.get("format", ""))
    if fmt and not re.fullmatch(fmt, value):
        errors.append(f"{at}: {value!r} is not a {schema['format']}")
    return errors


def _number(value: float, schema: dict[str, Any], at: str) -> list[str]:
    errors = []
    lo, hi = schema.get("minimum"), schema.get("maximum")
    ex_lo, ex_hi = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
    if lo is not None and (value < lo or (ex_lo is True and value == lo)):
        errors.append(f"{at}: {value} is below the minimum {lo}")
    if hi is not None and (value > hi or (ex_hi is True and value == hi)):
        errors.append(f"{at}: {value} is above the maximum {hi}")
    if _is_type(ex_lo, "number") and value <= ex_lo:
        errors.append(f"{at}: {value} is not above {ex_lo}")
    if _is_type(ex_hi, "number") and value >= ex_hi:
        errors.append(f"{at}: {value} is not below {ex_hi}")
    step = schema.get("multipleOf")
    if step:
        q = value / step
        if not math.isclose(q, round(q), rel_tol=0, abs_tol=1e-9):
            errors.append(f"{at}: {value} is not a multiple of {step}")
    return errors


def _array(value: list[Any], schema: dict[str, Any], root: Any, at: str) -> list[str]:
    errors = []
    prefix = schema.get("prefixItems", [])
    for i, item in enumerate(value):
        sub = prefix[i] if i < len(prefix) else schema.get("items", True)
        errors += schema_errors(item, sub, root, f"{at}[{i}]")
    if len(value) < schema.get("minItems", 0):
        errors.append(f"{at}: fewer than minItems {schema['minItems']}")
    if "maxItems" in schema and len(value) > schema["maxItems"]:
        errors.append(f"{at}: more than maxItems {schema['maxItems']}")
    if schema.get("uniqueItems"):
        for i, item in enumerate(value):
            if any(_same(item, other) for other in value[:i]):
                errors.append(f"{at}[{i}]: a duplicate (uniqueItems)")
    return errors


def _object(value: dict[str, Any], schema: dict[str, Any], root: Any, at: str) -> list[str]:
    errors = []
    props = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    for name in schema.get("required", ()):
        if name not in value:
            errors.append(f"{at}: missing required property {name!r}")
    for name, item in value.items():
        where = f"{at}.{name}"
        matched = False
        if name in props:
            matched = True
            errors += schema_errors(item, props[name], root, where)
        for pattern, sub in patterns.items():
            if re.search(pattern, name):
                matched = True
                errors += schema_errors(item, sub, root, where)
        if not matched and "additionalProperties" in schema:
            errors += schema_errors(item, schema["additionalProperties"], root, where)
        if "propertyNames" in schema:
            errors += schema_errors(name, schema["propertyNames"], root, f"{where} (name)")
    if len(value) < schema.get("minProperties", 0):
        errors.append(f"{at}: fewer than minProperties {schema['minProperties']}")
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        errors.append(f"{at}: more than maxProperties {schema['maxProperties']}")
    return errors
