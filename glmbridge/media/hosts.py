"""Which hosts a generated image or video may be downloaded from.

Z.ai answers with temporary URLs on its own file hosts; the gateway downloads them (for
``b64_json``, Gemini's ``inlineData``, Codex's image result and ``/v1/videos/{id}/content``).
A URL in an upstream answer is still data from outside, so only the media upstream's own
domain is fetched: ``https`` on the registrable domain of the media upstream's base URL
(``api.z.ai`` -> ``*.z.ai``; ``open.bigmodel.cn`` -> ``*.bigmodel.cn``), or, for a custom
upstream on an address (a proxy, the simulator), exactly its scheme, host and port.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

__all__ = ["allowed_download"]


def _is_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return host == "localhost"
    return True


def _domain(host: str) -> str:
    parts = host.split(".")
    # Two labels (z.ai), three for a two-letter country zone under a generic one (x.com.cn).
    if len(parts) >= 3 and len(parts[-1]) == 2 and parts[-2] in ("com", "net", "org", "co"):
        return ".".join(parts[-3:])
    return ".".join(parts[-2:])


def allowed_download(url: str, upstream_base: str) -> bool:
    """Whether ``url`` is on the media upstream's own file hosts (see the module)."""
    try:
        target, base = urlsplit(url), urlsplit(upstream_base)
        t_host, b_host = (target.hostname or "").lower(), (base.hostname or "").lower()
        t_port, b_port = target.port, base.port
    except ValueError:
        return False
    if not t_host or not b_host or target.username or target.password:
        return False
    if _is_address(b_host):
        return (target.scheme, t_host, t_port) == (base.scheme, b_host, b_port)
    if target.scheme != "https" or _is_address(t_host):
        return False
    domain = _domain(b_host)
    return t_host == domain or t_host.endswith("." + domain)
