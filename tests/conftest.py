"""Shared test configuration: hypothesis profiles, and a private data directory.

Servers record usage under ``$XDG_DATA_HOME/glmbridge`` by default; the tests point it at
a temporary directory so that no test writes into the home directory.

``ci`` (selected when the ``CI`` environment variable is set) is reproducible: a fixed
seed derivation (``derandomize``), no deadline (shared runners are slow and noisy), and
the failing example's blob printed for ``@reproduce_failure``. ``dev`` only drops the
deadline. ``HYPOTHESIS_PROFILE`` picks a profile explicitly.
"""

from __future__ import annotations

import os
import tempfile

from hypothesis import settings

os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="glmbridge-tests-")

settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)
