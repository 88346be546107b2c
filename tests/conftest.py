"""Shared test configuration: hypothesis profiles.

``ci`` (selected when the ``CI`` environment variable is set) is reproducible: a fixed
seed derivation (``derandomize``), no deadline (shared runners are slow and noisy), and
the failing example's blob printed for ``@reproduce_failure``. ``dev`` only drops the
deadline. ``HYPOTHESIS_PROFILE`` picks a profile explicitly.
"""

from __future__ import annotations

import os

from hypothesis import settings

settings.register_profile("ci", deadline=None, derandomize=True, print_blob=True)
settings.register_profile("dev", deadline=None)
settings.load_profile(
    os.environ.get("HYPOTHESIS_PROFILE") or ("ci" if os.environ.get("CI") else "dev")
)
