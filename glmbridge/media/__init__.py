"""Image and video generation on Z.ai, sans-I/O: what the doors' media requests mean and
what Z.ai's media APIs expect and answer.

* :mod:`glmbridge.media.images` — OpenAI's ``POST /v1/images/generations`` and the
  ``glm-image`` / ``cogview-4-250304`` models: model names, the size grid, quality, prices,
  Z.ai's request and answer.
* :mod:`glmbridge.media.videos` — OpenAI's ``/v1/videos`` job shape and CogVideoX-3 tasks.
* :mod:`glmbridge.media.gemini` — Gemini ``generateContent`` with image output
  (``inlineData`` parts).
* :mod:`glmbridge.media.hosts` — which hosts a generated file may be downloaded from.
* :mod:`glmbridge.media.forms` — bounded ``multipart/form-data`` decoding.

Z.ai's shapes: docs.z.ai/api-reference/image/generate-image,
docs.z.ai/api-reference/video/generate-video, docs.z.ai/api-reference/video/get-video-status.
Media is pay-as-you-go only: a Coding Plan key gets 429/1113 on these endpoints.
"""

from glmbridge.media.images import (
    IMAGE_MODELS,
    ImageJob,
    ImageModel,
    decode_image_request,
    image_model_for,
    snap_size,
)
from glmbridge.media.videos import VideoJob, decode_video_request

__all__ = [
    "IMAGE_MODELS",
    "ImageJob",
    "ImageModel",
    "VideoJob",
    "decode_image_request",
    "decode_video_request",
    "image_model_for",
    "snap_size",
]
