"""What the tests share, importable (``conftest.py`` files hold pytest's fixtures; test modules
import from here instead, and from each other only for what one module is about).

* :mod:`tests.support.servers`: real uvicorn servers in threads (:class:`RunningServer`),
  bridge settings in front of the GLM simulator, a free loopback port.
* :mod:`tests.support.simulator`: the simulator's state: reset, recorded chat bodies,
  ``[[sim:…]]`` directives.
* :mod:`tests.support.messages`, :mod:`tests.support.tools`, :mod:`tests.support.sse`,
  :mod:`tests.support.error_bodies`: request pieces, stream reading and error-shape checks
  shared by the end-to-end tests.
* :mod:`tests.support.clis`: the real Claude Code, Codex CLI and gemini-cli, installed from
  npm into a cache on first use, and how they are pointed at a bridge.
* :mod:`tests.support.certificates`: a self-signed certificate for loopback TLS servers.
"""
