"""The built-in GLM simulator: Z.ai's chat, Anthropic-endpoint, tokenizer and Web Search APIs.

It backs the server's ``--mock`` mode and the end-to-end tests (``docs/simulator.md``).
Independent of ``glmbridge``: it models the upstream, so it must not share the converters' bugs.
"""

from glmbridge_server.simulator.chat import MODELS, SCENARIOS, create_simulator_app
from glmbridge_server.simulator.scripts import Script, ScriptError, ScriptToolCall

__all__ = [
    "MODELS",
    "SCENARIOS",
    "Script",
    "ScriptError",
    "ScriptToolCall",
    "create_simulator_app",
]
