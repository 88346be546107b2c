"""OpenAI's ``POST /v1/images/generations`` on Z.ai's image models, sans-I/O.

Z.ai (docs.z.ai/api-reference/image/generate-image) answers ``POST
{paas/v4}/images/generations`` ``{model, prompt, quality, size, user_id}`` with
``{created, data: [{url}], content_filter: [{role, level}]}``: **one** image per call, at a
temporary URL. So an OpenAI request for ``n`` images is ``n`` Z.ai calls
(:meth:`ImageJob.zai_body` is the same body each time).

* **Models.** ``glm-image`` (the default) and ``cogview-4-250304`` by name; OpenAI's names
  (``gpt-image-*``, ``dall-e-*``) mean ``glm-image`` unless the configuration maps them
  elsewhere (:func:`image_model_for`).
* **Size grid** (:func:`snap_size`): glm-image 1024–2048 px per side in steps of 32, at
  most 2^22 pixels, default ``1280x1280``; CogView-4 512–2048 in steps of 16, at most 2^21,
  default ``1024x1024``. A requested size is scaled (aspect ratio kept) into the range and
  rounded to the grid; a ratio the range cannot hold is a 400.
* **Quality.** Z.ai's ``hd`` (glm-image's default, ~20 s) or ``standard`` (5–10 s);
  OpenAI's ``high`` means ``hd``, ``medium``/``low`` mean ``standard``, ``auto`` the model's
  default.
* **Answer format.** ``url`` (Z.ai's temporary URL) or ``b64_json`` (the gateway downloads
  the image). Like OpenAI, ``gpt-image-*`` answer ``b64_json`` unless told otherwise:
  Codex's image tool reads ``data[0].b64_json`` (tests/fixtures/codex/README.md).
* **Prices** per image: glm-image $0.015 (theopenco/llmgateway PR#1452), CogView-4 $0.01
  (PR#1394).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from fnmatch import fnmatchcase
from typing import Any, Literal

import msgspec

from glmbridge.errors import ClientRequestError

__all__ = [
    "IMAGE_MODELS",
    "OPENAI_IMAGE_MODELS",
    "ImageJob",
    "ImageModel",
    "decode_image_request",
    "image_model_for",
    "openai_images_body",
    "parse_zai_image",
    "snap_size",
]

#: At most this many images per request (OpenAI's own limit for ``n``).
MAX_IMAGES = 10
MAX_PROMPT_CHARS = 32_000


class ImageModel(msgspec.Struct, frozen=True, kw_only=True):
    """One Z.ai image model: its size grid, default size and quality, and price."""

    id: str
    min_side: int
    max_side: int
    step: int
    max_pixels: int
    default_size: str
    default_quality: Literal["hd", "standard"]
    price_usd: float


IMAGE_MODELS: dict[str, ImageModel] = {
    m.id: m
    for m in (
        ImageModel(id="glm-image", min_side=1024, max_side=2048, step=32, max_pixels=2**22,
                   default_size="1280x1280", default_quality="hd", price_usd=0.015),
        ImageModel(id="cogview-4-250304", min_side=512, max_side=2048, step=16,
                   max_pixels=2**21, default_size="1024x1024", default_quality="standard",
                   price_usd=0.01),
    )
}  # fmt: skip
"""Z.ai's image models (docs.z.ai/api-reference/image/generate-image)."""

#: OpenAI's image model names, served by ``glm-image`` unless configured otherwise.
OPENAI_IMAGE_MODELS = ("gpt-image-*", "dall-e-*", "chatgpt-image-*")
DEFAULT_IMAGE_MODEL = "glm-image"

_QUALITY = {"hd": "hd", "high": "hd", "standard": "standard", "medium": "standard",
            "low": "standard"}  # fmt: skip


def image_model_for(name: str | None, aliases: Mapping[str, str] = {}) -> ImageModel:
    """The Z.ai model serving ``name``: an alias of the configuration (``models``), a Z.ai
    image model by name, or OpenAI's names -> ``glm-image``. Anything else is a 400."""
    wanted = (name or DEFAULT_IMAGE_MODEL).strip().lower()
    target = aliases.get(wanted, wanted)
    if target in IMAGE_MODELS:
        return IMAGE_MODELS[target]
    if any(fnmatchcase(target, glob) for glob in OPENAI_IMAGE_MODELS):
        return IMAGE_MODELS[DEFAULT_IMAGE_MODEL]
    known = ", ".join([*IMAGE_MODELS, "gpt-image-1", "dall-e-3"])
    raise ClientRequestError(
        f"model {name!r} is not an image model (use one of {known})", path="model"
    )


def _parse_size(text: str) -> tuple[int, int]:
    w, sep, h = text.lower().partition("x")
    if not sep or not w.strip().isdigit() or not h.strip().isdigit():
        raise ClientRequestError(f"size {text[:40]!r} is not WIDTHxHEIGHT", path="size")
    width, height = int(w), int(h)
    if not (0 < width <= 100_000 and 0 < height <= 100_000):
        raise ClientRequestError(f"size {text[:40]!r} is out of range", path="size")
    return width, height


def snap_size(size: str | None, model: ImageModel) -> str:
    """``size`` (``WxH``, ``auto`` or ``None``) on ``model``'s grid, aspect ratio kept.

    The size is scaled into ``[min_side, max_side]`` and under ``max_pixels``, then each
    side rounded to a multiple of ``step``. Raises :class:`ClientRequestError` (400) when
    the ratio cannot fit (e.g. 4:1 on glm-image, whose sides span only 1024-2048).
    """
    if size is None or size.strip().lower() in ("", "auto"):
        return model.default_size
    width, height = _parse_size(size.strip())
    scale = 1.0
    if min(width, height) * scale < model.min_side:
        scale = model.min_side / min(width, height)
    if max(width, height) * scale > model.max_side:
        scale = model.max_side / max(width, height)
    capped = width * height * scale * scale > model.max_pixels
    if capped:
        scale = math.sqrt(model.max_pixels / (width * height))

    def grid(side: float) -> int:
        steps = side / model.step
        snapped = (math.floor(steps) if capped else round(steps)) * model.step
        return max(model.min_side, min(model.max_side, snapped))

    w, h = grid(width * scale), grid(height * scale)
    while w * h > model.max_pixels:  # rounding up may overshoot by a step
        if w >= h:
            w -= model.step
        else:
            h -= model.step
    if min(w, h) < model.min_side or abs(w / h - width / height) > 0.1 * (width / height):
        raise ClientRequestError(
            f"size {size[:40]!r} cannot be made on {model.id}: each side must be "
            f"{model.min_side}-{model.max_side} px (a multiple of {model.step}) with at most "
            f"{model.max_pixels} pixels",
            path="size",
        )
    return f"{w}x{h}"


class ImageJob(msgspec.Struct, frozen=True, kw_only=True):
    """One decoded images request: what to ask Z.ai, how often, and how to answer."""

    prompt: str
    model: ImageModel
    client_model: str
    n: int = 1
    size: str
    quality: Literal["hd", "standard"]
    response_format: Literal["url", "b64_json"]
    user_id: str | None = None

    def zai_body(self) -> bytes:
        """The JSON body of one Z.ai call (one image)."""
        body: dict[str, Any] = {"model": self.model.id, "prompt": self.prompt,
                                "size": self.size, "quality": self.quality}  # fmt: skip
        if self.user_id is not None:
            body["user_id"] = self.user_id
        return msgspec.json.encode(body)

    @property
    def price_usd(self) -> float:
        """What one image of this job costs."""
        return self.model.price_usd


def _field(data: Mapping[str, Any], name: str, kind: type | tuple[type, ...]) -> Any:
    value = data.get(name)
    if value is not None and not isinstance(value, kind):
        raise ClientRequestError(f"{name} has the wrong type", path=name)
    return value


def decode_image_request(
    body: bytes | Mapping[str, Any], aliases: Mapping[str, str] = {}
) -> ImageJob:
    """Decode OpenAI's images request (JSON bytes or an already decoded mapping).

    Raises :class:`ClientRequestError` (400) for anything Z.ai cannot make.
    """
    if isinstance(body, bytes | bytearray):
        try:
            data = msgspec.json.decode(body)
        except msgspec.DecodeError:
            raise ClientRequestError("request body is not valid JSON") from None
    else:
        data = body
    if not isinstance(data, Mapping):
        raise ClientRequestError("request body must be a JSON object")
    prompt = _field(data, "prompt", str)
    if not prompt or not prompt.strip():
        raise ClientRequestError("prompt is required", path="prompt")
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ClientRequestError(f"prompt is longer than {MAX_PROMPT_CHARS} characters",
                                 path="prompt")  # fmt: skip
    name = _field(data, "model", str)
    model = image_model_for(name, aliases)
    n = _field(data, "n", int)
    if n is not None and (isinstance(n, bool) or not 1 <= n <= MAX_IMAGES):
        raise ClientRequestError(f"n must be 1-{MAX_IMAGES}", path="n")
    quality_in = (_field(data, "quality", str) or "auto").lower()
    if quality_in != "auto" and quality_in not in _QUALITY:
        raise ClientRequestError(f"quality {quality_in[:20]!r} is not supported", path="quality")
    fmt = _field(data, "response_format", str)
    if fmt is None:  # OpenAI: gpt-image models always answer base64
        gpt_image = (name or "").lower().startswith(("gpt-image", "chatgpt-image"))
        fmt = "b64_json" if gpt_image else "url"
    if fmt not in ("url", "b64_json"):
        raise ClientRequestError("response_format must be url or b64_json",
                                 path="response_format")  # fmt: skip
    user = _field(data, "user", str)
    return ImageJob(
        prompt=prompt,
        model=model,
        client_model=name or model.id,
        n=n or 1,
        size=snap_size(_field(data, "size", str), model),
        quality=_QUALITY.get(quality_in, model.default_quality),  # type: ignore[arg-type]
        response_format=fmt,
        user_id=user if user is not None and 6 <= len(user) <= 128 else None,
    )


class ZaiImage(msgspec.Struct, frozen=True, kw_only=True):
    """Z.ai's answer for one image: its temporary URL and the content-filter verdicts."""

    url: str
    content_filter: tuple[dict[str, Any], ...] = ()


def parse_zai_image(body: bytes) -> ZaiImage:
    """Z.ai's ``{created, data: [{url}], content_filter}``; ``ValueError`` when malformed."""
    try:
        data = msgspec.json.decode(body)
        url = data["data"][0]["url"]
    except (msgspec.DecodeError, KeyError, IndexError, TypeError):
        raise ValueError("the image answer has no data[0].url") from None
    if not isinstance(url, str) or not url:
        raise ValueError("the image answer has no data[0].url")
    filters = data.get("content_filter") if isinstance(data, dict) else None
    kept = tuple(f for f in filters if isinstance(f, dict)) if isinstance(filters, list) else ()
    return ZaiImage(url=url, content_filter=kept)


def openai_images_body(
    items: list[dict[str, str]], filters: list[dict[str, Any]], *, job: ImageJob
) -> bytes:
    """OpenAI's answer: ``{created, data: [{url}|{b64_json}, …]}``, with Z.ai's
    ``content_filter`` verdicts kept alongside (an extra field OpenAI's SDKs ignore) and
    the size and quality that were made (the quality in OpenAI's words)."""
    # quality in OpenAI's words: Codex rejects an answer with any other (openai/codex,
    # codex-rs/codex-api/src/images.rs: low | medium | high | auto)
    quality = "high" if job.quality == "hd" else "medium"
    body: dict[str, Any] = {"created": int(time.time()), "data": items,
                            "size": job.size, "quality": quality}  # fmt: skip
    if filters:
        body["content_filter"] = filters
    return msgspec.json.encode(body)
