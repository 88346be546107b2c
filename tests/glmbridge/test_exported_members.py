"""The public API is curated: adding or removing a name is a deliberate, reviewed change."""

from __future__ import annotations

import glmbridge

EXPECTED = {
    "DEFAULT_ROUTE_TABLE",
    "PROFILES",
    "Exchange",
    "ExchangeStream",
    "FrontDoor",
    "UpstreamCodec",
    "UpstreamProfile",
    "ClientRequestError",
    "ErrorKind",
    "GlmbridgeError",
    "Message",
    "ModelSpec",
    "Request",
    "Response",
    "Route",
    "RouteTable",
    "SSEDecoder",
    "ServerSentEvent",
    "StopReason",
    "StreamGrammarError",
    "StreamStateError",
    "TokenEstimator",
    "UnsupportedFeatureError",
    "UpstreamConnectionError",
    "UpstreamError",
    "UpstreamProtocolError",
    "UpstreamTimeoutError",
    "Usage",
    "__version__",
    "accumulate",
    "estimate_request_tokens",
    "estimate_text_tokens",
    "events",
    "ir",
    "model_info",
    "resolve_route",
    "validate_anthropic_stream",
}


def test_all_is_pinned() -> None:
    assert set(glmbridge.__all__) == EXPECTED
    assert len(glmbridge.__all__) == len(EXPECTED), "duplicate names in __all__"


def test_every_exported_name_exists_and_is_documented() -> None:
    for name in glmbridge.__all__:
        obj = getattr(glmbridge, name)
        if name.isupper() or name == "__version__":
            continue  # constants carry no docstring of their own
        assert (obj.__doc__ or "").strip(), f"{name} has no docstring"


def test_library_imports_no_server_dependencies() -> None:
    import subprocess
    import sys

    code = (
        "import sys, glmbridge, glmbridge.protocols.anthropic, glmbridge.protocols.openai;"
        "bad = {'httpx2', 'starlette', 'anyio', 'uvicorn', 'asyncio', 'glmbridge.transport'}"
        " & set(sys.modules);"
        "print(sorted(bad))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_converters_never_look_at_model_names() -> None:
    # Converters receive capabilities; only routing.py may know GLM model ids.
    import pathlib
    import re

    root = pathlib.Path(glmbridge.__file__).parent
    offenders = []
    for path in [*root.glob("protocols/**/*.py"), root / "exchange.py", root / "sse.py"]:
        for lineno, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"['\"](glm-|claude-)", code):
                offenders.append(f"{path.name}:{lineno}")
    assert offenders == []
