"""The attack campaign of :mod:`tests.server.attack` against a real bridge in front of the
fault-injection upstream (issue 13, item 7): no 5xx the upstream did not cause, no secret in
anything a client receives, every error native and every stream grammatical, ``/health``
always answering, and no file descriptors left behind. ``tests/soak.py`` runs the same
campaign for longer, by hand, and prints the figures in ``docs/security.md``."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator

import pytest

from glmbridge_server.edge.app import create_app
from tests.server.attack import Target, run_campaign
from tests.server.faults import FaultServer
from tests.support.servers import SIM_KEY, make_bridge_settings, run_in_thread

pytestmark = pytest.mark.e2e

TOKEN = "campaign-token-5f1e"


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.fixture
def campaign_upstream() -> Iterator[FaultServer]:
    with FaultServer() as up:
        yield up


def test_the_attack_campaign_finds_no_defect(campaign_upstream: FaultServer) -> None:
    settings = make_bridge_settings(
        campaign_upstream.url,
        auth_token=TOKEN,
        header_timeout=1.0,
        body_timeout=1.0,
        first_output_timeout=2.0,
        idle_timeout=2.0,
        max_retries=1,
        auth_cooldown=0.0,
        quota_cooldown=0.0,
        slot_learning=0.0,  # the fault phase's 1302s teach no lasting limit
        max_connections=64,
    )
    server = run_in_thread(create_app(settings))
    try:
        before = _fds()
        report = run_campaign(Target(server.url, TOKEN, SIM_KEY), campaign_upstream, rounds=2)
        time.sleep(1.5)  # idle keep-alive and upstream connections close
        grown = _fds() - before
    finally:
        server.stop()
    summary = report.summary()
    assert report.requests > 100, summary
    assert report.faults > 20, summary
    assert not report.errors, summary
    assert not report.server_5xx, summary
    assert not report.leaks, summary
    assert not report.problems, summary
    assert not report.slow, summary
    assert report.health_failures == 0, summary
    assert report.health_worst < 1.0, summary
    assert grown < 20, f"{grown} file descriptors more than before"
