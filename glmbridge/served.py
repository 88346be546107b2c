"""Which model really answered: the upstream's ``model`` field, and what it teaches the router.

Since September 2026 the Coding Plan answers legacy ids with another model ("Calls to GLM-5.2
and GLM-5.1 are switched automatically to GLM-5.3, calls to GLM-5-Turbo and GLM-4.7 to
GLM-5.3-Flash": https://docs.bigmodel.cn/cn/coding-plan/overview, quoted in
earendil-works/pi#9616), and the answer's ``model`` names the model that served (a live check:
anomalyco/models.dev PR#7331). That field is the truth the server records.

* :func:`served_model` reads it from a whole answer (GLM chat or Anthropic Messages: both put
  ``model`` at the top level);
* :class:`ServedModelScanner` finds it in the first bytes of a stream (every GLM chunk carries
  ``model``; Anthropic's ``message_start`` does);
* :class:`ServedAs` remembers, per profile, the ids a source does not settle (glm-4.6,
  glm-4.5, glm-4.5-air) once an answer names another model; the router applies the serving
  model's spec from then on (:func:`glmbridge.routing.resolve_route`).

Sans-I/O: the server persists :meth:`ServedAs.to_builtins` in its data directory.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import msgspec

__all__ = ["ServedAs", "ServedModelScanner", "listed_models", "served_model"]

# The first `"model": "<id>"` of a JSON text. Inside a JSON string the quotes would be
# escaped (`\"model\"`), so tool arguments or prose cannot match.
_MODEL = re.compile(rb'"model"\s*:\s*"([A-Za-z0-9._:/\[\]-]{1,100})"')
_SCAN_LIMIT = 64 * 1024  # the field comes in the first event; give up after this much
_LIST_LIMIT = 500  # a model list longer than this is read only this far


def _clean(raw: bytes | str) -> str | None:
    text = raw.decode("ascii", "replace") if isinstance(raw, bytes) else raw
    text = text.strip().lower()
    return text if 0 < len(text) <= 100 and text.isprintable() else None


class _Top(msgspec.Struct):
    model: str | None = None


_decode_top = msgspec.json.Decoder(_Top).decode


def served_model(body: bytes) -> str | None:
    """The ``model`` of a whole upstream answer (lowercased), ``None`` if it has none."""
    try:
        top = _decode_top(body)
    except msgspec.MsgspecError:
        return None
    return _clean(top.model) if top.model else None


class _Listed(msgspec.Struct):
    id: str | None = None


class _Listing(msgspec.Struct):
    data: list[_Listed] | None = None


_decode_listing = msgspec.json.Decoder(_Listing).decode


def listed_models(body: bytes) -> frozenset[str] | None:
    """The ids of a model list (``GET {base}/models``: ``{"data": [{"id": …}, …]}``, the
    OpenAI and the Anthropic shape alike), lowercased; ``None`` if it is no such list.

    Z.ai's ``/api/coding/paas/v4/models`` and ``/api/paas/v4/models`` list the served models,
    without context metadata (PrimeIntellect-ai/prime-agent PR#1443; NousResearch/hermes-agent
    PR#90279); the listing cannot show rerouting (the answers' ``model`` can)."""
    try:
        listing = _decode_listing(body)
    except msgspec.MsgspecError:
        return None
    if listing.data is None:
        return None
    ids = (_clean(item.id) for item in listing.data[:_LIST_LIMIT] if item.id)
    return frozenset(i for i in ids if i)


class ServedModelScanner:
    """Finds the served ``model`` in a stream's first bytes; feed raw chunks until
    :attr:`model` is set or :attr:`done`."""

    __slots__ = ("_buffer", "done", "model")

    def __init__(self) -> None:
        self._buffer = b""
        self.model: str | None = None
        self.done = False

    def feed(self, chunk: bytes) -> str | None:
        """Look at ``chunk``; the model once found (then every later call is free)."""
        if self.done:
            return self.model
        data = self._buffer + chunk
        found = _MODEL.search(data)
        if found is not None:
            self.model, self.done, self._buffer = _clean(found.group(1)), True, b""
        elif len(data) > _SCAN_LIMIT:
            self.done, self._buffer = True, b""
        else:
            self._buffer = data[-200:]  # a field split across two chunks
        return self.model


class ServedAs:
    """What serves each model id, per profile, as learned from answers.

    ``learn`` records what an answer said; ``get`` gives the serving model when it is
    another one (``None``: the id is served as itself, or nothing was learned).
    """

    def __init__(self, learned: Mapping[str, Mapping[str, str]] | None = None) -> None:
        self._learned: dict[str, dict[str, str]] = {
            str(p): {str(k): str(v) for k, v in m.items()} for p, m in (learned or {}).items()
        }

    def known(self, profile: str, model: str) -> str | None:
        """What an answer said serves ``model`` on ``profile`` (itself included)."""
        return self._learned.get(profile, {}).get(model)

    def get(self, profile: str, model: str) -> str | None:
        """The learned serving model of ``model`` on ``profile`` when it is another one."""
        served = self.known(profile, model)
        return served if served is not None and served != model else None

    def learn(self, profile: str, requested: str, served: str) -> bool:
        """Record that ``requested`` was answered by ``served``; ``True`` when that is news."""
        requested, served = requested.lower(), served.lower()
        models = self._learned.setdefault(profile, {})
        if models.get(requested) == served:
            return False
        models[requested] = served
        return True

    def to_builtins(self) -> dict[str, dict[str, str]]:
        """A JSON-ready copy (profile -> requested id -> serving id)."""
        return {p: dict(m) for p, m in self._learned.items()}

    @classmethod
    def from_json(cls, data: bytes) -> ServedAs:
        """Read :meth:`to_builtins` output; anything malformed is ignored."""
        try:
            raw = msgspec.json.decode(data, type=dict[str, dict[str, str]])
        except msgspec.MsgspecError:
            return cls()
        return cls(raw)
