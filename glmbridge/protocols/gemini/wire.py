"""Gemini API wire shapes a client sends (``generateContent`` and friends), read leniently.

The wire is proto3 JSON: camelCase, which is what the SDKs send. REST users also send
snake_case, which the API accepts too. msgspec would silently drop a snake_case key, so
:func:`decode_request` normalises deliberately: a body that contains one of the shapes'
snake_case field names as a key is converted key by key to camelCase first, except inside
the values that are the user's own data (function-call ``args``, function ``response``
objects and JSON schemas, whose property names must stay exactly as written).

Telling the two apart costs nothing for the usual body: it is first decoded by twins of the
shapes that refuse unknown keys, and a body all of whose keys are known camelCase fields
(what gemini-cli and the SDKs send) is done in that one pass; any other body is scanned for
snake_case names and decoded as described above.
"""

from __future__ import annotations

import operator
import re
from functools import reduce
from itertools import groupby
from types import UnionType
from typing import Any, TypeVar, Union, get_args, get_origin

import msgspec

from glmbridge._tool_args import exact_float
from glmbridge.errors import ClientRequestError
from glmbridge.protocols.json_errors import decode_body

__all__ = ["Content", "GenerateContentRequest", "Part", "decode_request"]


# gc=False: decoded JSON cannot form reference cycles, and untracked instances spare
# the cyclic collector pauses that grow with the request (issue 13, item 3).
class _In(msgspec.Struct, kw_only=True, rename="camel", gc=False):
    """Inbound shapes: camelCase on the wire, unknown fields ignored."""


class Blob(_In):
    mime_type: str = "application/octet-stream"
    data: str = ""


class FileData(_In):
    mime_type: str | None = None
    file_uri: str = ""


class FunctionCall(_In):
    name: str
    args: dict[str, Any] | None = None
    id: str | None = None


class FunctionResponse(_In):
    name: str = ""
    response: dict[str, Any] | None = None
    id: str | None = None
    parts: list[dict[str, Any]] | None = None


class Part(_In):
    """One part: exactly one of the data fields, plus ``thought`` metadata."""

    text: str | None = None
    inline_data: Blob | None = None
    file_data: FileData | None = None
    function_call: FunctionCall | None = None
    function_response: FunctionResponse | None = None
    executable_code: dict[str, Any] | None = None
    code_execution_result: dict[str, Any] | None = None
    thought: bool | None = None
    thought_signature: str | None = None


class Content(_In):
    role: str | None = None
    parts: list[Part] = []


class FunctionDeclaration(_In):
    name: str
    description: str | None = None
    parameters: dict[str, Any] | None = None
    parameters_json_schema: msgspec.Raw = msgspec.Raw(b"")  # kept raw: usually passed through


class Tool(_In):
    function_declarations: list[FunctionDeclaration] | None = None
    google_search: dict[str, Any] | None = None
    google_search_retrieval: dict[str, Any] | None = None
    code_execution: dict[str, Any] | None = None
    url_context: dict[str, Any] | None = None


class FunctionCallingConfig(_In):
    mode: str | None = None
    allowed_function_names: list[str] | None = None


class ToolConfig(_In):
    function_calling_config: FunctionCallingConfig | None = None


class ThinkingConfig(_In):
    include_thoughts: bool | None = None
    thinking_budget: int | None = None
    thinking_level: str | None = None


class GenerationConfig(_In):
    temperature: float | None = None
    top_p: float | None = None
    top_k: float | None = None
    candidate_count: int | None = None
    max_output_tokens: int | None = None
    stop_sequences: list[str] | None = None
    response_mime_type: str | None = None
    response_schema: dict[str, Any] | None = None
    response_json_schema: Any = None
    thinking_config: ThinkingConfig | None = None
    response_modalities: list[str] | None = None
    seed: Any = None
    presence_penalty: Any = None
    frequency_penalty: Any = None


class GenerateContentRequest(_In):
    """The request body (``model`` comes from the URL path)."""

    contents: list[Content] = []
    system_instruction: Content | None = None
    tools: list[Tool] | None = None
    tool_config: ToolConfig | None = None
    generation_config: GenerationConfig | None = None
    safety_settings: Any = None
    cached_content: str | None = None
    # countTokens wraps a whole request: {"generateContentRequest": {...}}
    generate_content_request: dict[str, Any] | None = None


_DECODE = msgspec.json.Decoder(GenerateContentRequest, float_hook=exact_float)
_DECODE_ANY = msgspec.json.Decoder(float_hook=exact_float)
_ENCODE = msgspec.json.Encoder(decimal_format="number").encode


# --- the one-pass path: every key known -----------------------------------------------------

_STRICT: dict[type[_In], type[msgspec.Struct]] = {}  # each shape -> its twin refusing unknown keys
_S = TypeVar("_S", bound=_In)


def _strict(shape: type[_S]) -> type[_S]:
    """``shape`` again, as a subclass refusing unknown keys, down to its nested shapes."""
    if shape not in _STRICT:
        fields = [_strict_field(f) for f in msgspec.structs.fields(shape)]
        _STRICT[shape] = msgspec.defstruct(
            shape.__name__, [f for f in fields if f is not None], bases=(shape,),
            module=__name__, kw_only=True, rename="camel", gc=False, forbid_unknown_fields=True,
        )  # fmt: skip
    return _STRICT[shape]  # type: ignore[return-value]


def _strict_field(info: msgspec.structs.FieldInfo) -> Any:
    """The field re-declared with its nested shapes strict (None: it has none, inherited)."""
    kind = _strict_type(info.type)
    if kind is info.type:
        return None
    if info.default is not msgspec.NODEFAULT:
        return info.name, kind, info.default
    if info.default_factory is not msgspec.NODEFAULT:
        return info.name, kind, msgspec.field(default_factory=info.default_factory)
    return info.name, kind


def _strict_type(kind: Any) -> Any:
    """``kind`` with every shape in it (``Blob | None``, ``list[Part]``) swapped for its twin."""
    if isinstance(kind, type) and get_origin(kind) is None and issubclass(kind, _In):
        return _strict(kind)
    args = get_args(kind)
    swapped = tuple(_strict_type(a) for a in args)
    if swapped == args:
        return kind
    origin = get_origin(kind)
    return reduce(operator.or_, swapped) if origin in (Union, UnionType) else origin[swapped]


_DECODE_KNOWN = msgspec.json.Decoder(_strict(GenerateContentRequest), float_hook=exact_float)


# --- the normalising path -------------------------------------------------------------------

# The shapes' own snake_case field names, so a field added to a shape is covered here too.
_SNAKE_NAMES = sorted({f.name for s in _STRICT for f in msgspec.structs.fields(s) if "_" in f.name})
# Grouped by first letter (a(?:llowed_…|…)|c(?:ached_…|…)): a third of the time of one flat
# alternation, which tries every name at each quote of the body.
_SNAKE_FIELDS = re.compile(rb'"(?:%s)"\s*:' % "|".join(
    first + "(?:" + "|".join(n[1:] for n in names) + ")"
    for first, names in groupby(_SNAKE_NAMES, key=lambda n: n[0])
).encode())  # fmt: skip
# Values that are the user's data: their keys are never renamed.
_OPAQUE = frozenset({
    "args", "response", "parameters", "parametersJsonSchema", "responseSchema",
    "responseJsonSchema", "executableCode", "codeExecutionResult",
})  # fmt: skip


def _camel(key: str) -> str:
    head, *rest = key.split("_")
    return head + "".join(w[:1].upper() + w[1:] for w in rest) if rest else key


def _normalise(value: Any) -> Any:
    if isinstance(value, list):
        return [_normalise(v) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        name = _camel(key) if isinstance(key, str) else key
        out[name] = item if name in _OPAQUE else _normalise(item)
    return out


def decode_request(body: bytes) -> GenerateContentRequest:
    """The typed request, from camelCase or snake_case JSON.

    Raises:
        ClientRequestError: the body is not a valid request (names the field).
    """
    try:
        # What the SDKs and gemini-cli send: every key a known camelCase field, so nothing
        # is dropped and nothing needs normalising; one pass, no scan of the body.
        return _DECODE_KNOWN.decode(body)
    except (msgspec.DecodeError, RecursionError):
        pass  # an unknown or snake_case key, or an invalid body: decided below as before
    if not _SNAKE_FIELDS.search(body):
        return decode_body(_DECODE, body)
    try:
        raw = _DECODE_ANY.decode(body)
        # Back to bytes and through the typed decoder (Raw fields need bytes). The
        # normalising walk recurses as deep as the body nests: inside the guard too.
        normal = _ENCODE(_normalise(raw))
    except msgspec.DecodeError:
        raise ClientRequestError("body is not valid JSON") from None
    except RecursionError:
        raise ClientRequestError("body is nested too deeply") from None
    return decode_body(_DECODE, normal)
