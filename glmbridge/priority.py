"""Which scheduling class a request belongs to: the interactive turn, a subagent, background.

Z.ai's Coding Plan keys allow one to three requests in flight. When Claude Code's
subagents and background calls take those slots, the turn the user is waiting on
queues behind them (``../shared/reference/user-demand.md`` §1.1, zai-org/feedback#761).
The server's scheduler serves the classes in this order, with aging so that nothing
starves; this module only decides the class, from what the clients really send
(``tests/fixtures/claude_code/README.md``, Claude Code 2.1.197):

1. An explicit ``x-glmbridge-priority`` header (``interactive``, ``subagent``,
   ``background``) wins: any client can say what it is.
2. **Background**: a haiku-class model name (Claude Code's small/fast model alias), a
   tiny ``max_tokens`` (at most :data:`TINY_MAX_TOKENS`), or a call that offers no tools
   and asks for a title or a summary (Claude Code's session-title request: ``tools: []``,
   a system prompt "Generate a concise, sentence-case title …", a JSON-schema output).
3. **Subagent**: a Claude Code request (``x-claude-code-session-id`` or its session in
   ``metadata.user_id``) that offers tools but not the ``Agent``/``Task`` tool and lacks
   the main prompt's "interactive agent" marker. Subagents cannot start subagents, so
   their tool list never has the ``Agent`` tool; the main turn's always has, except in
   ``claude --bare`` (exactly Bash, Edit and Read, and no subagents at all).
4. Everything else is **interactive**: other clients' turns (Codex, gemini-cli, SDKs)
   are somebody's interactive turn unless rule 2 says otherwise.

Limits (documented in ``docs/traffic-control.md``): the rules follow Claude Code's
current prompts; a renamed tool or a reworded prompt degrades subagents to
interactive (never the reverse), and compaction ("summary of the conversation", sent
with the tools) stays interactive because the user waits for it.
"""

from __future__ import annotations

from enum import IntEnum

from glmbridge import ir

__all__ = ["PRIORITY_HEADER", "TINY_MAX_TOKENS", "Priority", "classify"]

#: The request header that names the class explicitly.
PRIORITY_HEADER = "x-glmbridge-priority"
#: A ``max_tokens`` at or below this is a background call (titles, labels, yes/no checks).
TINY_MAX_TOKENS = 512

# The main prompt of Claude Code's interactive session (request_main.json, system[2]).
_MAIN_MARKER = "You are an interactive agent"
# Tools only the main session offers: subagents cannot spawn subagents.
_MAIN_ONLY_TOOLS = frozenset({"Agent", "Task"})
# ``claude --bare`` has no subagents: its main turn offers exactly these (request_bare.json).
_BARE_TOOLS = frozenset({"Bash", "Edit", "Read"})
# Lower-case words of title/summary requests (request_small.json: "Generate a concise,
# sentence-case title (3-7 words) …").
_BACKGROUND_WORDS = ("title", "summar")


class Priority(IntEnum):
    """Scheduling classes, most urgent first (the value is the rank)."""

    INTERACTIVE = 0
    SUBAGENT = 1
    BACKGROUND = 2

    @classmethod
    def parse(cls, text: str) -> Priority | None:
        """The class a header value names (case-insensitive), else ``None``."""
        try:
            return cls[text.strip().upper()]
        except KeyError:
            return None


def _system_text(req: ir.Request) -> str:
    parts = [block.text for block in req.system]
    # Claude Code also sends role:"system" messages (mid-conversation-system beta).
    for message in req.messages:
        if message.role == "system":
            parts.extend(b.text for b in message.content if isinstance(b, ir.TextBlock))
    return "\n".join(parts)


def _asks_title_or_summary(req: ir.Request) -> bool:
    text = _system_text(req).lower()
    if any(word in text for word in _BACKGROUND_WORDS):
        return True
    last = req.messages[-1] if req.messages else None
    if last is None or last.role != "user":
        return False
    # Claude Code's title request ends its user text with "Write the title …".
    tail = " ".join(b.text for b in last.content if isinstance(b, ir.TextBlock))[-400:].lower()
    return any(word in tail for word in _BACKGROUND_WORDS)


def classify(
    req: ir.Request, *, header: str | None = None, claude_code: bool = False
) -> tuple[Priority, str]:
    """The scheduling class of ``req`` and the rule that decided it (for logs and docs).

    Args:
        req: the decoded request (``model`` is the name the client asked for).
        header: the ``x-glmbridge-priority`` header, if sent.
        claude_code: the request comes from Claude Code (its session header was sent).
    """
    if header:
        named = Priority.parse(header)
        if named is not None:
            return named, "header"
    if "haiku" in req.model.lower():
        return Priority.BACKGROUND, "haiku-class model"
    if req.max_tokens is not None and req.max_tokens <= TINY_MAX_TOKENS:
        return Priority.BACKGROUND, "tiny max_tokens"
    if not req.tools and _asks_title_or_summary(req):
        return Priority.BACKGROUND, "title or summary call"
    if claude_code and req.tools:
        names = {tool.name for tool in req.tools}
        main = names & _MAIN_ONLY_TOOLS or names == _BARE_TOOLS
        if not main and _MAIN_MARKER not in _system_text(req):
            return Priority.SUBAGENT, "Claude Code subagent"
    return Priority.INTERACTIVE, "default"
