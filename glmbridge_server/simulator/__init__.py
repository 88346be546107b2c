"""The built-in GLM simulator: Z.ai's chat, Anthropic-endpoint, tokenizer, Web Search and media
APIs.

It backs the server's ``--mock`` mode (mounted by :func:`mount`) and the end-to-end tests
(``docs/simulator.md``). Independent of ``glmbridge``: it models the upstream, so it must not
share the converters' bugs. Only :mod:`~.app` imports Starlette.
"""

from glmbridge_server.simulator.app import create_simulator_app, mount
from glmbridge_server.simulator.catalog import MODELS
from glmbridge_server.simulator.scripts import SCENARIOS, Script, ScriptError, ScriptToolCall

__all__ = [
    "MODELS",
    "SCENARIOS",
    "Script",
    "ScriptError",
    "ScriptToolCall",
    "create_simulator_app",
    "mount",
]
