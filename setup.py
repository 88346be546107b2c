"""Fail fast on a Python older than 3.11.

``requires-python`` in pyproject.toml is enough for a wheel, but when pip installs this
source tree on Python 3.10 it resolves the dependencies first and backtracks for many
minutes (httpx2 has no release for 3.10) before it looks at our own Requires-Python. The
metadata build runs on the target interpreter, so a clear error here stops it at once.
Everything else is configured in pyproject.toml.
"""

import sys

if sys.version_info < (3, 11):  # noqa: UP036 - this check is for the interpreters ruff excludes
    sys.exit(
        f"glmbridge requires Python 3.11 or newer; this is Python {sys.version.split()[0]}. "
        "Install it with a newer Python, e.g. `python3.11 -m pip install '.[server]'`."
    )

from setuptools import setup

setup()
