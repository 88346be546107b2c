"""What the user said, under what the client wrapped around it.

Agents send their own context as user text, in tagged blocks, and glmbridge joins a turn's
user texts into one message: Codex's ``<environment_context>`` (its cwd, shell, date) and
``# AGENTS.md instructions`` (``<INSTRUCTIONS>``), gemini-cli's ``<session_context>``
(date, OS, workspace directories), Claude Code's ``<system-reminder>`` blocks. A model
reads past them to the prompt; so does the simulator (:func:`spoken`), and it takes the
client's working directory from them (:func:`client_cwd`), so that ``use Read to show
notes.txt`` reads the file the user named where the user is (:func:`named_path`).
Recorded requests: ``tests/fixtures/{codex,gemini_cli,claude_code}``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from typing import Any

__all__ = ["client_cwd", "named_path", "no_shell", "path_arguments", "spoken"]

_WRAPPED = re.compile(
    r"<(environment_context|session_context|system-reminder|user_instructions|INSTRUCTIONS"
    r"|skills_instructions|permissions instructions|collaboration_mode|turn_aborted)>"
    r".*?</\1>",
    re.DOTALL,
)
_AGENTS_HEADING = re.compile(r"^# AGENTS\.md instructions for \S+\s*$", re.MULTILINE)
_CWD = (
    re.compile(r"<cwd>([^<\n]+)</cwd>"),  # Codex
    re.compile(r"Workspace Directories:\*\*\s*\n\s*- (/[^\n]+)"),  # gemini-cli
    re.compile(r"I'm currently working in the directory: (/[^\n]+)"),  # older gemini-cli
    re.compile(r"(?:Primary working directory|Working directory): (/[^\n]+)"),  # Claude Code
)
# A file the user names: an absolute or relative path, or a bare name with an extension.
_PATH = re.compile(
    r"(?<![\w/.~-])((?:~|\.{1,2})?/[\w.@+-]+(?:/[\w.@+-]+)*|[\w@+-][\w.@+-]*"
    r"(?:/[\w.@+-]+)*\.[A-Za-z0-9]{1,8})(?![\w/])"
)


def spoken(text: str) -> str:
    """``text`` without the client's context blocks (stripped; ``""`` if nothing else)."""
    return _AGENTS_HEADING.sub("", _WRAPPED.sub("", text)).strip()


def client_cwd(texts: Iterable[str]) -> str | None:
    """The working directory the client reports in its context, if it does."""
    for text in texts:
        for pattern in _CWD:
            found = pattern.search(text)
            if found is not None:
                return found.group(1).strip()
    return None


def named_path(text: str, cwd: str | None) -> str | None:
    """The first file path ``text`` names, absolute (relative to ``cwd`` when known: file
    tools want absolute paths and refuse paths outside the workspace), else ``None``."""
    found = _PATH.search(text)
    if found is None:
        return None
    path = found.group(1)
    if path.startswith("/") or cwd is None:
        return path
    if path.startswith("~"):
        return path
    return posixpath.normpath(posixpath.join(cwd, path))


_PATH_PARAMS = ("file_path", "absolute_path", "path", "filename", "file", "notebook_path")


def _path_parameter(parameters: object) -> str | None:
    """The string parameter of a tool's JSON schema that takes a file path, if any."""
    props = parameters.get("properties") if isinstance(parameters, dict) else None
    if not isinstance(props, dict):
        return None
    for name in _PATH_PARAMS:
        sub = props.get(name)
        if isinstance(sub, dict) and sub.get("type") == "string":
            return name
    return None


def path_arguments(
    arguments: dict[str, Any], tool: dict[str, Any], text: str, cwd: str | None
) -> dict[str, Any]:
    """``arguments`` for a call of ``tool`` (an OpenAI function tool) with the file the
    user named in ``text`` in its path parameter (after the tool's own name, which the
    user names first: "use Read to show notes.txt")."""
    raw = tool.get("function")
    fn: dict[str, Any] = raw if isinstance(raw, dict) else {}
    key = _path_parameter(fn.get("parameters"))
    if key is None:
        return arguments
    name = str(fn.get("name", ""))
    rest = re.split(re.escape(name), text, maxsplit=1, flags=re.IGNORECASE)[-1] if name else text
    path = named_path(rest, cwd)
    return arguments if path is None else {**arguments, key: path}


def no_shell(command: str, tools: list[dict[str, Any]]) -> str:
    """The answer to "run `command`" when the client offers no shell tool."""
    names = [str((t.get("function") or {}).get("name", "?")) for t in tools]
    offered = f"it offers {len(names)}: {', '.join(names[:12])}" if names else "it offers none"
    return (
        f"I cannot run `{command}`: this client offers me no shell tool ({offered}). "
        "gemini-cli offers run_shell_command only with --yolo (or when it may ask for "
        "approval); Claude Code and Codex offer theirs by default."
    )
