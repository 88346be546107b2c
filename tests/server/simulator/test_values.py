"""The simulator's tool-call arguments are valid for the offered tool's schema.

Hypothesis draws satisfiable JSON Schemas (every keyword the generator knows, nested) and
checks the generated value with an independent validator (tests/schema_check.py); the
real tool schemas recorded from Claude Code, Codex CLI and gemini-cli get valid, sensible
arguments; and the validator itself rejects what it must (so the property can fail).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from glmbridge_server.simulator.scripts import Context, _example_call, default_script_for
from glmbridge_server.simulator.values import example_for
from tests.schema_check import schema_errors

FIXTURES = Path(__file__).parents[2] / "fixtures"
NAMES = ["city", "file_path", "url", "command", "query", "count", "email", "timezone",
         "description", "pattern", "id", "x", "value", "items", "tags", "mode"]  # fmt: skip
PATTERNS = [r"^[A-Z]{3}-\d{4}$", r"^\d+$", r"^[a-z_][a-z0-9_]*$", r"@", r"^(?:foo|bar)\.txt$",
            r"^https?://", r"[^\s]+", r"^v\d+\.\d+(\.\d+)?$"]  # fmt: skip
FORMATS = ["date-time", "date", "time", "email", "uri", "uuid", "ipv4", "hostname"]


@st.composite
def strings(draw: st.DrawFn) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "string"}
    choice = draw(st.sampled_from(["plain", "length", "pattern", "format", "enum"]))
    if choice == "length":
        lo = draw(st.integers(0, 30))
        schema["minLength"] = lo
        if draw(st.booleans()):
            schema["maxLength"] = draw(st.integers(max(lo, 1), 40))
    elif choice == "pattern":
        schema["pattern"] = draw(st.sampled_from(PATTERNS))
    elif choice == "format":
        schema["format"] = draw(st.sampled_from(FORMATS))
    elif choice == "enum":
        schema["enum"] = draw(st.lists(st.text(max_size=8), min_size=1, max_size=4, unique=True))
    return schema


@st.composite
def numbers(draw: st.DrawFn) -> dict[str, Any]:
    integer = draw(st.booleans())
    schema: dict[str, Any] = {"type": "integer" if integer else "number"}
    step = draw(st.sampled_from([None, 1, 2, 3, 5, 10] + ([] if integer else [0.5, 0.25])))
    if step is not None:
        schema["multipleOf"] = step
    width = (step or 1) * 4
    lo = draw(
        st.one_of(
            st.none(),
            st.integers(-1000, 1000),
            st.floats(-1000, 1000, allow_nan=False).map(lambda f: round(f, 2)),
        )
    )
    hi = draw(st.one_of(st.none(), st.integers(0, 2000)))
    if lo is not None:
        key = draw(st.sampled_from(["minimum", "exclusiveMinimum", "draft4"]))
        if key == "draft4":
            schema.update(minimum=lo, exclusiveMinimum=True)
        else:
            schema[key] = lo
    if hi is not None:
        hi = hi if lo is None else lo + width + abs(hi)  # room for a multiple inside
        schema[draw(st.sampled_from(["maximum", "exclusiveMaximum"]))] = hi
    return schema


def scalars() -> st.SearchStrategy[dict[str, Any]]:
    return st.one_of(
        strings(), numbers(), st.just({"type": "boolean"}), st.just({"type": "null"}),
        st.builds(lambda v: {"const": v}, st.one_of(st.integers(), st.text(max_size=5))),
        strings().map(lambda s: {**s, "type": ["string", "null"]}),
    )  # fmt: skip


def containers(children: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    @st.composite
    def objects(draw: st.DrawFn) -> dict[str, Any]:
        names = draw(st.lists(st.sampled_from(NAMES), max_size=4, unique=True))
        props = {n: draw(children) for n in names}
        schema: dict[str, Any] = {"type": "object", "properties": props}
        schema["required"] = draw(st.lists(st.sampled_from(names), unique=True)) if names else []
        if draw(st.booleans()):
            schema["additionalProperties"] = False
            if names:
                schema["minProperties"] = draw(st.integers(0, len(names)))
        elif draw(st.booleans()):
            schema["minProperties"] = draw(st.integers(0, 3))
        return schema

    @st.composite
    def arrays(draw: st.DrawFn) -> dict[str, Any]:
        lo = draw(st.integers(0, 3))
        schema: dict[str, Any] = {"type": "array", "items": draw(children), "minItems": lo}
        if draw(st.booleans()):
            schema["maxItems"] = draw(st.integers(max(lo, 1), 5))
        if draw(st.booleans()):  # unique items need an item schema with enough values
            schema["items"] = draw(st.sampled_from([{"type": "string"}, {"type": "string",
                                   "enum": ["a", "b", "c", "d"]}]))  # fmt: skip
            schema["uniqueItems"] = True
        return schema

    @st.composite
    def combinations(draw: st.DrawFn) -> dict[str, Any]:
        kind = draw(st.sampled_from(["anyOf", "oneOf", "allOf"]))
        if kind == "allOf":  # object parts with their own properties
            parts = [{"type": "object", "properties": {n: draw(children)}, "required": [n]}
                     for n in draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=3,
                                            unique=True))]  # fmt: skip
            return {"allOf": parts}
        # branches of different types, so exactly one matches the value (oneOf)
        branches = [
            {"type": "null"}, draw(strings()), {"type": "boolean"},
            {"type": "array", "items": draw(children)},
        ]  # fmt: skip
        picked = draw(st.lists(st.sampled_from(range(4)), min_size=1, max_size=4, unique=True))
        return {kind: [branches[i] for i in picked]}

    return st.one_of(objects(), arrays(), combinations())


SCHEMAS = st.recursive(scalars(), containers, max_leaves=12)


@st.composite
def tool_parameters(draw: st.DrawFn) -> dict[str, Any]:
    """An object schema as a tool's ``parameters``, sometimes with ``$defs`` and ``$ref``."""
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True))
    props = {n: draw(SCHEMAS) for n in names}
    params: dict[str, Any] = {"type": "object", "properties": props,
                              "required": draw(st.lists(st.sampled_from(names), unique=True)),
                              "additionalProperties": False}  # fmt: skip
    if draw(st.booleans()):
        shared = draw(SCHEMAS)
        params["$defs"] = {"Shared": shared}
        params["properties"][names[0]] = {"$ref": "#/$defs/Shared"}
    return params


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(SCHEMAS, st.sampled_from(NAMES))
def test_the_example_is_valid_for_any_schema(schema: dict[str, Any], name: str) -> None:
    value = example_for(schema, name)
    assert schema_errors(value, schema) == [], (schema, value)
    json.dumps(value)  # JSON-encodable


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tool_parameters(), st.integers(0, 2))
@example(  # a second call must not append to a string whose pattern sits inside anyOf
    {
        "type": "object",
        "required": ["url"],
        "properties": {
            "url": {"anyOf": [{"type": "null"}, {"type": "string", "pattern": r"^[A-Z]{3}-\d{4}$"}]}
        },
    },
    1,
)
def test_tool_call_arguments_are_valid_for_the_offered_tool(
    params: dict[str, Any], variant: int
) -> None:
    tool = {"type": "function", "function": {"name": "do_it", "parameters": params}}
    call = _example_call(tool, variant)
    assert call.name == "do_it"
    assert isinstance(call.arguments, dict)
    assert schema_errors(call.arguments, params) == [], (params, call.arguments)


def _recorded_tools() -> list[tuple[str, dict[str, Any]]]:
    """(name, parameters) of every tool the recorded CLIs offered."""
    found: dict[str, dict[str, Any]] = {}
    for path in sorted(FIXTURES.glob("*/*.json")):
        try:
            data = json.loads(path.read_text())
        except ValueError:
            continue
        stack = [data]
        while stack:
            node = stack.pop()
            if isinstance(node, dict):
                schema = node.get("input_schema") or node.get("parameters")
                if (schema is None and node.get("type") == "function"
                        and isinstance(node.get("function"), dict)):  # fmt: skip
                    schema = node["function"].get("parameters")
                    node = node["function"]
                name = node.get("name")
                if isinstance(schema, dict) and isinstance(name, str) and "properties" in schema:
                    found.setdefault(f"{path.parent.name}:{name}", schema)
                stack.extend(node.values())
            elif isinstance(node, list):
                stack.extend(node)
    return sorted(found.items())


RECORDED = _recorded_tools()


def test_the_recorded_tool_schemas_are_found() -> None:
    clients = {key.partition(":")[0] for key, _ in RECORDED}
    assert {"claude_code", "codex"} <= clients, clients
    assert len(RECORDED) >= 30


@pytest.mark.parametrize(("key", "params"), RECORDED, ids=[k for k, _ in RECORDED])
def test_recorded_tools_get_valid_arguments(key: str, params: dict[str, Any]) -> None:
    name = key.partition(":")[2]
    call = _example_call({"type": "function", "function": {"name": name, "parameters": params}},
                         0)  # fmt: skip
    assert schema_errors(call.arguments, params) == [], call.arguments


def test_sensible_values_for_a_demo() -> None:
    weather = {"type": "object", "required": ["city", "unit", "days"], "properties": {
        "city": {"type": "string"}, "unit": {"enum": ["celsius", "fahrenheit"]},
        "days": {"type": "integer", "minimum": 1, "maximum": 14}}}  # fmt: skip
    assert example_for(weather) == {"city": "Paris", "unit": "celsius", "days": 1}
    assert example_for({"type": "string", "format": "uri"}, "target") == "https://example.com"
    assert example_for({"type": "string"}, "filePath").startswith("/")  # absolute, harmless
    assert example_for({"type": "string", "pattern": r"^[A-Z]{3}-\d{4}$"}) == "AAA-0000"


def test_the_validator_can_fail() -> None:
    # If these were accepted, the properties above would prove nothing.
    assert schema_errors("x", {"type": "integer"})
    assert schema_errors({}, {"type": "object", "required": ["a"]})
    assert schema_errors({"b": 1}, {"type": "object", "additionalProperties": False})
    assert schema_errors(3, {"type": "integer", "multipleOf": 2})
    assert schema_errors(5, {"exclusiveMaximum": 5})
    assert schema_errors(5, {"maximum": 5, "exclusiveMaximum": True})
    assert schema_errors("ab", {"pattern": "^a$"})
    assert schema_errors("nope", {"format": "uuid"})
    assert schema_errors(["a", "a"], {"uniqueItems": True})
    assert schema_errors(None, {"oneOf": [{"type": "null"}, {"enum": [None]}]})
    assert schema_errors(True, {"enum": [1]})
    assert schema_errors(1, {"$ref": "#/$defs/S", "$defs": {"S": {"type": "string"}}})


def test_a_named_tool_is_called_by_default_with_valid_arguments() -> None:
    def tool(name: str, prop: str) -> dict[str, Any]:
        params = {"type": "object", "required": [prop], "properties": {prop: {"type": "string"}}}
        return {"type": "function", "function": {"name": name, "parameters": params}}

    tools = [tool("Read", "file_path"), tool("get_weather", "city")]
    script = default_script_for(Context(tools=tools, user_text="Please use get_weather now"))
    assert [c.name for c in script.tool_calls] == ["get_weather"]
    assert script.tool_calls[0].arguments == {"city": "Paris"}
    assert script.reasoning  # the demo shows thinking
    # Naming no tool: a text answer (with reasoning), even though tools are offered.
    plain = default_script_for(Context(tools=tools, user_text="read me a poem"))
    assert not plain.tool_calls and plain.text and plain.reasoning
