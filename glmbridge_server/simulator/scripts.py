"""Script types, named scenarios and the default behaviour of the GLM simulator.

A :class:`Script` describes one upstream answer. The simulator picks a script per request
(header, ``[[sim:...]]`` directive in the user text, the app's script queue, or the default
behaviour) and renders it with Z.ai GLM's wire quirks. This module holds the *what*; the
rendering (the *how it looks on the wire*) lives in :mod:`glmbridge_server.simulator.chat` and
:mod:`glmbridge_server.simulator.anthropic`; the models and codes in :mod:`~.catalog`.

This is an independent model of the upstream: it must not import ``glmbridge``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

from glmbridge_server.simulator.catalog import ERROR_CODES, OVERLOADED_MESSAGE
from glmbridge_server.simulator.images import image_bytes, png_facts
from glmbridge_server.simulator.prompt import client_cwd, no_shell, path_arguments, spoken
from glmbridge_server.simulator.values import example_for

__all__ = [
    "SCENARIOS",
    "Context",
    "Script",
    "ScriptError",
    "ScriptToolCall",
    "build_scenario",
    "context_from_request",
    "default_script_for",
    "error_for_code",
    "find_directive",
    "text_of",
]


class ScriptToolCall(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One function call the simulated model makes."""

    name: str
    #: A dict is JSON-encoded; a string is sent verbatim (use it for malformed JSON).
    arguments: dict[str, Any] | str = {}
    #: Fixed call id; ``None`` generates ``call_<24 hex>``.
    id: str | None = None


class ScriptError(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """An HTTP error returned instead of an answer (before any stream starts)."""

    status: int
    code: str
    message: str | None = None


class Script(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """One simulated answer.

    A script with neither ``text`` nor ``tool_calls`` keeps the default behaviour's content
    (and reasoning, unless ``reasoning`` is set) and only changes transport settings. A script
    with content has exactly the reasoning it names (``None``/``""`` = none). Reasoning is
    always dropped when the request disables thinking or the model cannot think.
    """

    reasoning: str | None = None
    text: str | None = None
    tool_calls: list[ScriptToolCall] = []
    #: Override: "stop", "length", "sensitive", "network_error", "model_context_window_exceeded".
    finish_reason: str | None = None
    error: ScriptError | None = None
    #: Characters per streamed fragment.
    chunk_size: int = 8
    #: Force exactly this many text fragments (the text is padded if too short).
    chunk_count: int | None = None
    #: Seconds between streamed chunks (non-stream: total delay = delay * fragments).
    delay: float = 0.0
    #: Stop after N fragments with finish_reason ``network_error`` (or ``finish_reason``).
    fail_after_chunks: int | None = None
    #: Close the response after N fragments without a final chunk or ``[DONE]``.
    cut_after_chunks: int | None = None
    #: Usage overrides (``None`` = simulated value).
    cached_tokens: int | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None

    @property
    def has_content(self) -> bool:
        """Whether the script names the answer itself (text or tool calls)."""
        return self.text is not None or bool(self.tool_calls)


def error_for_code(code: str, field_name: str = "request") -> ScriptError:
    """The error GLM returns for a business code; unknown 3-digit codes are HTTP statuses."""
    if code in ERROR_CODES:
        status, message = ERROR_CODES[code]
        return ScriptError(status=status, code=code, message=message.format(field=field_name))
    if code.isdigit() and 100 <= int(code) <= 599:
        return ScriptError(status=int(code), code=code, message=f"HTTP error {code}.")
    if code.isdigit():
        return ScriptError(status=400, code=code, message=f"API error {code}.")
    raise ValueError(f"error code must be numeric, got {code!r}")


@dataclass(frozen=True, slots=True)
class Context:
    """The parts of a request that scenarios and the default behaviour look at."""

    tools: list[dict[str, Any]] = field(default_factory=list)  # function tools offered
    user_text: str = ""  # text of the last user message in the current turn
    tool_results: list[str] = field(default_factory=list)  # tool outputs in the current turn
    images: int = 0  # image/video/file parts in the last user message
    json_mode: bool = False  # response_format json_object
    json_schema: dict[str, Any] | None = None  # the schema a JSON-mode prompt asks for
    # what a vision model sees in each inline image of the last user message (_sim_images)
    seen: list[tuple[int, int, list[str]] | None] = field(default_factory=list)
    cwd: str | None = None  # the client's working directory, from its context (prompt.py)


def _text_parts(content: Any) -> list[str]:
    if isinstance(content, str):
        return [content]
    if isinstance(content, list):
        return [
            str(p.get("text", ""))
            for p in content
            if isinstance(p, dict) and p.get("type") == "text"
        ]
    return []


def text_of(content: Any) -> str:
    """The text of a message content: a string, or its text parts joined by newlines."""
    return "\n".join(_text_parts(content))


def context_from_request(body: dict[str, Any]) -> tuple[Context, str]:
    """The scenario context and the text a directive may appear in.

    The *current turn* is everything after the last assistant message: directives are read only
    from its user text, so a tool round trip started by ``[[sim:bash:...]]`` does not loop.
    """
    msgs = body["messages"]
    last_asst = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=-1)
    turn = msgs[last_asst + 1 :]
    users = [m for m in turn if m["role"] == "user"]
    # Clients add system reminders as user messages or text parts (Claude Code's
    # `<system-reminder>` blocks; glmbridge also turns mid-conversation system messages
    # into them), so a directive may sit in any user text of the turn, and the text to
    # echo is the last user text part that is not such a reminder.
    directive_text = "\n".join(text_of(m["content"]) for m in users)
    last_user = (
        users[-1]
        if users
        else next((m for m in reversed(msgs) if m["role"] == "user"), {"content": ""})
    )
    parts = [p for m in users for p in _text_parts(m["content"])]
    said = [t for p in parts if (t := spoken(p))]  # the prompt, not the client's context
    content = last_user.get("content")
    rf = body.get("response_format") or {}
    ctx = Context(
        tools=[t for t in body.get("tools") or () if t.get("type") == "function"],
        user_text=(said or [""])[-1],
        tool_results=[m["content"] for m in turn if m["role"] == "tool"],
        images=sum(1 for p in content if isinstance(p, dict) and p.get("type") != "text")
        if isinstance(content, list)
        else 0,
        json_mode=rf.get("type") == "json_object",
        json_schema=_asked_schema(msgs) if rf.get("type") == "json_object" else None,
        seen=_seen(content),
        cwd=client_cwd(text_of(m.get("content")) for m in msgs),
    )
    return ctx, directive_text


def _seen(content: Any) -> list[tuple[int, int, list[str]] | None]:
    if not isinstance(content, list):
        return []
    out = []
    for part in content:
        if isinstance(part, dict) and part.get("type") == "image_url":
            data = image_bytes(part)
            out.append(png_facts(data) if data is not None else None)
    return out


# glmbridge carries a JSON schema to GLM as this instruction (GLM has json_object only); a
# real model follows it, so the simulator answers with an object of that shape.
_SCHEMA_MARK = "conforms to this JSON Schema:\n"


def _asked_schema(msgs: list[dict[str, Any]]) -> dict[str, Any] | None:
    system = next((m for m in msgs if m.get("role") == "system"), None)
    text = system.get("content") if system else None
    if not isinstance(text, str) or _SCHEMA_MARK not in text:
        return None
    try:
        schema, _ = _DECODER.raw_decode(text, text.index(_SCHEMA_MARK) + len(_SCHEMA_MARK))
    except ValueError:
        return None
    return schema if isinstance(schema, dict) else None


def _schema_answer(schema: dict[str, Any], reply: str) -> Any:
    """A value of ``schema``'s shape: strings say ``reply``, numbers sit in their range."""
    kind = schema.get("type")
    kind = kind[0] if isinstance(kind, list) and kind else kind
    if kind == "object" or "properties" in schema:
        props = schema.get("properties") or {}
        return {k: _schema_answer(v if isinstance(v, dict) else {}, reply)
                for k, v in props.items()}  # fmt: skip
    if kind == "array":
        items = schema.get("items")
        return [_schema_answer(items, reply)] if isinstance(items, dict) else []
    if kind == "string" and not schema.get("enum"):
        return reply
    if kind in ("integer", "number") and isinstance(schema.get("minimum"), (int, float)):
        return schema["minimum"]
    return example_for(schema, "value")


# ---------------------------------------------------------------------------- directives

_DIRECTIVE = "[[sim:"
_DECODER = json.JSONDecoder()


def find_directive(text: str) -> str | dict[str, Any] | None:
    """The last ``[[sim:<name>]]`` / ``[[sim:{json}]]`` directive in ``text``.

    Returns the scenario name, the decoded JSON object, or ``None``. Raises ``ValueError``
    for a malformed JSON directive (so a typo is loud, not silently ignored).
    """
    start = text.rfind(_DIRECTIVE)
    if start < 0:
        return None
    pos = start + len(_DIRECTIVE)
    if text.startswith("{", pos):
        try:
            obj, end = _DECODER.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise ValueError(f"malformed [[sim:{{...}}]] directive: {exc.msg}") from None
        if not text.startswith("]]", end):
            raise ValueError("[[sim:{...}]] directive must end with ']]'")
        if not isinstance(obj, dict | str):
            raise ValueError("[[sim:{...}]] directive must hold a JSON object")
        return obj
    end = text.find("]]", pos)
    if end < 0:
        raise ValueError("[[sim:...]] directive must end with ']]'")
    return text[pos:end].strip()


# ---------------------------------------------------------------------------- tools

_BASH_NAMES = (
    "bash", "shell", "run_shell_command", "run_command", "execute_command", "terminal",
    "exec_command",  # Codex CLI (tests/fixtures/codex)
)  # fmt: skip
_RUN_REQUEST = re.compile(r"\b(?:run|execute)\s+`([^`\n]+)`", re.IGNORECASE)


def _fn(tool: dict[str, Any]) -> dict[str, Any]:
    fn = tool.get("function")
    return fn if isinstance(fn, dict) else {}


def _bash_tool(tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    by_name = {str(_fn(t).get("name", "")).lower(): t for t in tools}
    for name in _BASH_NAMES:
        if name in by_name:
            return by_name[name]
    for name, tool in by_name.items():
        if "bash" in name or "shell" in name:
            return tool
    return None


def _bash_call(command: str, tools: list[dict[str, Any]]) -> ScriptToolCall:
    """A call to the offered Bash-like tool, adapted to its parameter names."""
    tool = _bash_tool(tools)
    if tool is None:
        return ScriptToolCall(
            name="Bash", arguments={"command": command, "description": f"Run {command}"}
        )
    fn = _fn(tool)
    props = (fn.get("parameters") or {}).get("properties") or {}
    key = "command"
    if props and key not in props:  # e.g. {"cmd": ...}: use the first string parameter
        key = next(
            (k for k, v in props.items() if isinstance(v, dict) and v.get("type") == "string"),
            next(iter(props)),
        )
    args: dict[str, Any] = {key: command}
    if not props or "description" in props:
        args["description"] = f"Run {command}"
    return ScriptToolCall(name=str(fn.get("name")), arguments=args)


_PLAIN = frozenset({"type", "description", "title", "default", "examples", "minLength"})


def _example_call(tool: dict[str, Any] | None, variant: int) -> ScriptToolCall:
    """A call of ``tool`` with arguments valid for its parameter schema, plausible for a demo
    (:func:`~glmbridge_server.simulator.values.example_for`); ``variant`` > 0 makes a second call
    of the same tool differ where its schema allows."""
    if tool is None:
        cities = ("Paris", "Beijing", "Tokyo")
        return ScriptToolCall(
            name="get_weather", arguments={"location": cities[variant % len(cities)]}
        )
    fn = _fn(tool)
    params = fn.get("parameters")
    params = params if isinstance(params, dict) else {"type": "object"}
    args = example_for(params)
    args = args if isinstance(args, dict) else {}
    props = params.get("properties")
    for key, value in args.items() if variant else ():
        sub = props.get(key) if isinstance(props, dict) else None
        # only a plain string field: any suffix keeps it valid
        free = isinstance(sub, dict) and sub.get("type") == "string" and set(sub) <= _PLAIN
        if isinstance(value, str) and free:
            args[key] = f"{value} {variant + 1}"
            break
    return ScriptToolCall(name=str(fn.get("name")), arguments=args)


# Asking for a tool by name: "use get_weather", "call the Glob tool", "invoke `search`".
_USE_REQUEST = re.compile(r"\b(?:use|call|invoke)\s+(?:the\s+)?`?([A-Za-z0-9_.-]+)`?", re.I)


def _asked_tool(ctx: Context) -> dict[str, Any] | None:
    """The offered tool the user asks for by name, if any."""
    by_name = {str(_fn(t).get("name", "")).lower(): t for t in ctx.tools}
    for match in _USE_REQUEST.finditer(ctx.user_text):
        tool = by_name.get(match.group(1).lower())
        if tool is not None:
            return tool
    return None


# ---------------------------------------------------------------------------- scenarios


def _echo(ctx: Context) -> str:
    text = ctx.user_text.strip()
    reply = f"You said: {text[:200]}" if text else "You said nothing I could read."
    if ctx.images:
        reply += f" (with {ctx.images} attachment{'s' if ctx.images > 1 else ''})"
    if ctx.json_schema is not None:
        return json.dumps(_schema_answer(ctx.json_schema, reply))
    return json.dumps({"reply": reply}) if ctx.json_mode else reply


_LOREM = (
    "The quick brown fox jumps over the lazy dog while the simulator streams another "
    "deterministic sentence for benchmarking purposes. "
)

SCENARIOS: dict[str, str] = {
    "default": "the default behaviour (same as no script)",
    "text": "a plain text answer echoing the user, no reasoning",
    "thinking": "reasoning followed by a text answer",
    "tool": "one call of the first offered function tool (get_weather if none)",
    "parallel_tools": "two calls in one answer (first two tools, or one tool twice)",
    "bash:<command>": "a call of the Bash-like tool with {command, description}",
    "search[:<query>]": "a call of the offered web_search function (query: the argument, or "
    "the user's text), then an answer quoting result [1]",
    "long:<n>": "a text answer streamed as exactly n content chunks",
    "slow[:<seconds>]": "the default answer, 20 text chunks, <seconds> (0.1) between chunks",
    "network_error": "3 text chunks, then finish_reason network_error",
    "sensitive": "2 text chunks, then finish_reason sensitive",
    "length": "a truncated text with finish_reason length",
    "context_window": "a short text with finish_reason model_context_window_exceeded",
    "cut": "3 text chunks, then the connection closes without a final chunk or [DONE]",
    "error:<code>": "an HTTP error with that business code (e.g. 1302 -> 429, 1261 -> 400)",
    "overloaded": "HTTP 529 with code 1305, as Z.ai sheds load (no Retry-After)",
}


def build_scenario(spec: str, ctx: Context) -> Script:
    """The script for a named scenario (see :data:`SCENARIOS`); ``ValueError`` if unknown."""
    name, _, arg = spec.partition(":")
    name = name.strip().lower()
    tools = ctx.tools
    if name == "default" and not arg:
        return Script()
    if name == "text" and not arg:
        return Script(text=_echo(ctx))
    if name == "thinking" and not arg:
        return Script(
            reasoning="Let me think about this step by step. The user wrote a "
            "message; a short, direct acknowledgement is the right answer.",
            text=_echo(ctx),
        )
    if name == "tool" and not arg:
        call = _example_call(tools[0] if tools else None, 0)
        return Script(reasoning=f"I should call the {call.name} tool.", tool_calls=[call])
    if name == "parallel_tools" and not arg:
        calls = [
            _example_call(tools[0] if tools else None, 0),
            _example_call(
                tools[1] if len(tools) > 1 else (tools[0] if tools else None),
                1 if len(tools) < 2 else 0,
            ),
        ]
        return Script(
            reasoning="Both calls are independent; I will make them in parallel.", tool_calls=calls
        )
    if name == "bash" and arg:
        return Script(
            reasoning=f"The user wants me to run `{arg}`. I will use the shell tool.",
            tool_calls=[_bash_call(arg, tools)],
        )
    if name == "search":
        if _search_tool(tools) is None:  # not offered: a model cannot call it
            return Script(text=_echo(ctx))
        return _search_call(arg.strip() or _search_query(ctx.user_text))
    if name == "long" and arg.isdigit() and int(arg) > 0:
        n = int(arg)
        return Script(text=_LOREM * (n * 8 // len(_LOREM) + 1), chunk_count=n)
    if name == "slow":
        return Script(delay=float(arg) if arg else 0.1, chunk_count=20)
    if name == "network_error" and not arg:
        return Script(text=_LOREM, fail_after_chunks=3, finish_reason="network_error")
    if name == "sensitive" and not arg:
        return Script(text=_LOREM, fail_after_chunks=2, finish_reason="sensitive")
    if name == "length" and not arg:
        return Script(
            text="This answer was cut off because it reached the max", finish_reason="length"
        )
    if name == "context_window" and not arg:
        return Script(
            text="The context window is full", finish_reason="model_context_window_exceeded"
        )
    if name == "cut" and not arg:
        return Script(text=_LOREM, cut_after_chunks=3)
    if name == "error" and arg:
        return Script(error=error_for_code(arg.strip()))
    if name == "overloaded" and not arg:
        # Z.ai sheds load as 529 overloaded_error with code 1305 (repoprompt/repoprompt-ce#295,
        # on /api/anthropic) and sends no Retry-After (zai-org/GLM-5#87).
        return Script(error=ScriptError(status=529, code="1305", message=OVERLOADED_MESSAGE))
    raise ValueError(f"unknown simulator scenario {spec!r}; known: {', '.join(SCENARIOS)}")


# Claude Code's WebSearch request: one user line
# (tests/fixtures/claude_code/web_search_request.json).
_SEARCH_REQUEST = re.compile(r"^Perform a web search for the query:\s*(.+)$", re.DOTALL)
_SEARCH_RESULTS = re.compile(r"^Web search results for ", re.MULTILINE)
_LINK = re.compile(r'"title":"((?:[^"\\]|\\.)*)","url":"((?:[^"\\]|\\.)*)"')
_FIRST_RESULT = re.compile(r"^\[(\d+)\] (.+)\nURL: (\S+)(?:\nPublished: .*)?\n(.+)$", re.MULTILINE)


def _search_tool(tools: list[dict[str, Any]]) -> dict[str, Any] | None:
    return next((t for t in tools if _fn(t).get("name") == "web_search"), None)


def _search_query(text: str) -> str:
    match = _SEARCH_REQUEST.match(text.strip())
    return (match.group(1) if match else text).strip()[:200] or "glmbridge"


def _search_call(query: str) -> Script:
    return Script(
        reasoning=f"I should search the web for {query!r}.",
        tool_calls=[ScriptToolCall(name="web_search", arguments={"query": query})],
    )


def _search_answer(results: str) -> Script:
    """An answer built on the first result a search returned: glmbridge's numbered results
    (cited as ``[n]``), or Claude Code's WebSearch tool output (``Links: [{title, url}]``)."""
    match = _FIRST_RESULT.search(results)
    if match is not None:
        number, title, url, content = match.groups()
        return Script(
            reasoning="The search returned results; I will answer from the first one.",
            text=f"According to {title} ({url}): {content} [{number}]",
        )
    link = _LINK.search(results)
    if link is None:
        return Script(text="The web search found nothing useful, so I cannot say for sure.")
    title, url = json.loads(f'"{link.group(1)}"'), json.loads(f'"{link.group(2)}"')
    return Script(
        reasoning="The search returned links; I will answer from the first one.",
        text=f"The top result is [{title}]({url}).",
    )


def _describe(ctx: Context) -> Script:
    """A vision model's description of the images it was shown (size and readable text)."""
    parts = []
    for n, facts in enumerate(ctx.seen or [None] * ctx.images, 1):
        if facts is None:
            parts.append(f"Image {n} is a picture with no readable text.")
            continue
        width, height, texts = facts
        said = " ".join(f'"{t}"' for t in texts) or "none"
        parts.append(f"Image {n} is a {width}x{height} PNG picture. Visible text: {said}.")
    return Script(text=" ".join(parts))


def default_script_for(ctx: Context) -> Script:
    """The deterministic default answer: describe images when asked, quote tool output
    (answer from search results), run a command, search when asked to, or echo."""
    if ctx.images and ctx.user_text.lower().startswith("describe this image"):
        return _describe(ctx)
    if ctx.tool_results and _SEARCH_RESULTS.search(ctx.tool_results[-1]):
        return _search_answer(ctx.tool_results[-1])
    if (
        not ctx.tool_results
        and _search_tool(ctx.tools)
        and _SEARCH_REQUEST.match(ctx.user_text.strip())
    ):
        return _search_call(_search_query(ctx.user_text))
    if ctx.tool_results:
        output = "\n".join(ctx.tool_results)[:2000]
        return Script(
            reasoning="The tool returned its output; I will report it to the user.",
            text=f"The command output was:\n{output}",
        )
    match = _RUN_REQUEST.search(ctx.user_text)
    if match and _bash_tool(ctx.tools) is not None:
        return build_scenario(f"bash:{match.group(1)}", ctx)
    if match:  # e.g. headless gemini-cli without --yolo: no shell tool to call
        return Script(text=no_shell(match.group(1), ctx.tools))
    asked = _asked_tool(ctx)
    if asked is not None:
        call = _example_call(asked, 0)
        if isinstance(call.arguments, dict):  # the file the user named, where the user is
            args = path_arguments(call.arguments, asked, ctx.user_text, ctx.cwd)
            call = ScriptToolCall(name=call.name, arguments=args)
        return Script(
            reasoning=f"The user asks me to use the {call.name} tool. I will call it with "
            "arguments that fit its parameters, then report what it returns.",
            tool_calls=[call],
        )
    tools = f" {len(ctx.tools)} tools are offered, but none is asked for." if ctx.tools else ""
    return Script(
        reasoning=f"The user sent a message of {len(ctx.user_text)} characters.{tools} "
        "I will acknowledge it briefly.",
        text=_echo(ctx),
    )
