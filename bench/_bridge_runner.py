"""Run glmbridge-server against the simulator's Anthropic endpoint (used by bench/bench_server.py).

    python bench/_bridge_runner.py SIM_URL [glmbridge-server arguments...]

A custom upstream URL is always an OpenAI-chat upstream, so to put the server in front of a
separately running simulator's ``/api/anthropic/v1/messages`` this script registers a
**bench-only** profile, ``sim-anthropic`` (``protocol="anthropic"``, ``x-api-key`` auth, like
the built-in ``zai-anthropic``, with the simulator's base URL), in
``glmbridge.profiles.PROFILES`` of this process only, and then runs the ordinary
``glmbridge-server`` entry point (``glmbridge_server.cli.main``: same socket, uvicorn
config and app as the console script). The caller sets ``GLMBRIDGE_UPSTREAM=sim-anthropic``.
Nothing is registered anywhere else; not a test and not part of the package.
"""

from __future__ import annotations

import sys

from glmbridge.profiles import PROFILES, UpstreamProfile
from glmbridge_server.cli import main

PROFILE_NAME = "sim-anthropic"


def register(sim_url: str) -> UpstreamProfile:
    """Add the bench-only ``sim-anthropic`` profile for the simulator at ``sim_url``."""
    profile = UpstreamProfile(
        name=PROFILE_NAME,
        base_url=f"{sim_url.rstrip('/')}/api/anthropic",
        protocol="anthropic",
        auth_header="x-api-key",
        auth_scheme="",
        models=("glm-*",),
    )
    PROFILES[PROFILE_NAME] = profile
    return profile


if __name__ == "__main__":
    register(sys.argv[1])
    sys.exit(main(sys.argv[2:]))
