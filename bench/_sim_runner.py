"""Run the GLM simulator under uvicorn on 127.0.0.1 (used by bench/bench_server.py).

    python bench/_sim_runner.py PORT

Access logging is off and uvicorn logs at ``warning``, so the simulator spends its time on
its endpoints only: the chat API (``/api/coding/paas/v4/chat/completions``) and the Z.ai
Anthropic endpoint (``/api/anthropic/v1/messages``). Not a test and not part of the package.
"""

from __future__ import annotations

import sys

import uvicorn

from glmbridge_server.simulator import create_simulator_app


def main() -> None:
    port = int(sys.argv[1])
    uvicorn.run(
        create_simulator_app(),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        lifespan="off",
    )


if __name__ == "__main__":
    main()
