"""The launch wing: ``glmbridge-server claude | codex | gemini`` (the launcher), the
background server it starts (``status``, ``stop``) and Claude Code's status line.

It imports only :mod:`glmbridge_server.settings` from the rest of the server, and this
``__init__`` imports nothing: ``statusline`` must start within ~50 ms.
"""
