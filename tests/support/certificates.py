"""A throwaway TLS certificate for servers the tests run on 127.0.0.1."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

__all__ = ["self_signed"]


def self_signed(folder: Path) -> tuple[Path, Path]:
    """``(cert.pem, key.pem)`` in ``folder``: self-signed for ``127.0.0.1``, valid one day."""
    if shutil.which("openssl") is None:
        raise RuntimeError("openssl is needed to make the test certificate")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key),
         "-out", str(cert), "-days", "1", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key
