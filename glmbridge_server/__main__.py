"""``python -m glmbridge_server`` runs the ``glmbridge-server`` command."""

from __future__ import annotations

import sys

from glmbridge_server.cli import main

if __name__ == "__main__":
    sys.exit(main())
