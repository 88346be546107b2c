"""Gemini image output (``generateContent`` answered with ``inlineData`` image parts).

Google's image models (``gemini-2.5-flash-image``, ``gemini-3-pro-image-preview``) and the
official ``nanobanana`` gemini-cli extension call ``generateContent`` and read the image
from ``candidates[0].content.parts[*].inlineData {mimeType, data}``
(ai.google.dev/gemini-api/docs/image-generation). A request is an image request when its
model name contains ``-image`` or its ``generationConfig.responseModalities`` has
``IMAGE``; the prompt is the text of the last user turn, made by ``glm-image``.
``generationConfig.imageConfig.aspectRatio`` (``"16:9"``) picks the size on the model's
grid. Editing (an image in the last user turn) is a 400: Z.ai's image models only
generate from text.
"""

from __future__ import annotations

import math
from typing import Any

from glmbridge.errors import ClientRequestError
from glmbridge.media.forms import decode_object
from glmbridge.media.images import IMAGE_MODELS, ImageJob, image_model_for, snap_size

__all__ = ["gemini_image_answer", "gemini_image_job", "wants_image"]


def _config(data: dict[str, Any]) -> dict[str, Any]:
    config = data.get("generationConfig") or data.get("generation_config") or {}
    return config if isinstance(config, dict) else {}


def wants_image(model: str, body: bytes) -> bool:
    """Whether this ``generateContent`` asks for image output (see the module)."""
    if "-image" in model.lower():
        return True
    if b"odalities" not in body or (b"IMAGE" not in body and b"image" not in body):
        return False  # cheap test first (no copy of the body): most requests are text
    try:
        config = _config(decode_object(body))
    except ClientRequestError:
        return False
    modalities = config.get("responseModalities") or config.get("response_modalities") or ()
    return isinstance(modalities, list) and any(
        isinstance(m, str) and m.upper() == "IMAGE" for m in modalities
    )


def _last_user_text(data: dict[str, Any]) -> str:
    contents = data.get("contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list):
        raise ClientRequestError("contents is required", path="contents")
    for content in reversed(contents):
        if not isinstance(content, dict) or content.get("role", "user") != "user":
            continue
        found = content.get("parts")
        parts: list[Any] = found if isinstance(found, list) else []
        if any(isinstance(p, dict) and ("inlineData" in p or "inline_data" in p) for p in parts):
            raise ClientRequestError(
                "image editing is not supported: Z.ai's image models generate from text only",
                path="contents",
            )
        texts = [p["text"] for p in parts if isinstance(p, dict) and isinstance(p.get("text"), str)]
        return "\n".join(t for t in texts if t.strip())
    return ""


def _size_for(ratio: object, model_id: str) -> str | None:
    if not isinstance(ratio, str) or ":" not in ratio:
        return None
    a, _, b = ratio.partition(":")
    if not (a.strip().isdigit() and b.strip().isdigit()) or int(a) == 0 or int(b) == 0:
        raise ClientRequestError(f"aspectRatio {ratio[:20]!r} is not W:H",
                                 path="generationConfig.imageConfig.aspectRatio")  # fmt: skip
    model = IMAGE_MODELS[model_id]
    side = int(model.default_size.partition("x")[0])  # keep the default's area
    r = int(a) / int(b)
    return f"{round(side * math.sqrt(r))}x{round(side / math.sqrt(r))}"


def gemini_image_job(body: bytes) -> ImageJob:
    """The image to make for a Gemini image request (one image, base64 answer)."""
    data = decode_object(body)
    prompt = _last_user_text(data)
    if not prompt:
        raise ClientRequestError("the last user turn has no text to draw", path="contents")
    model = image_model_for(None)
    config = _config(data)
    found = config.get("imageConfig")
    image_config: dict[str, Any] = found if isinstance(found, dict) else {}
    size = snap_size(_size_for(image_config.get("aspectRatio"), model.id), model)
    return ImageJob(prompt=prompt, model=model, client_model=model.id, size=size,
                    quality=model.default_quality, response_format="b64_json")  # fmt: skip


def gemini_image_answer(model: str, data_b64: str, mime: str = "image/png") -> dict[str, Any]:
    """``generateContent``'s answer carrying one ``inlineData`` image part."""
    return {
        "candidates": [{
            "content": {"role": "model", "parts": [{"inlineData": {"mimeType": mime,
                                                                   "data": data_b64}}]},
            "finishReason": "STOP",
            "index": 0,
        }],
        "usageMetadata": {"promptTokenCount": 0, "candidatesTokenCount": 0,
                          "totalTokenCount": 0},
        "modelVersion": model,
    }  # fmt: skip
