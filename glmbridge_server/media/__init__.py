"""The media wing: image and video generation on Z.ai's pay-as-you-go media APIs.

``access`` (which keys, which upstream; the wing's state), ``client`` (calls and capped
downloads from the media upstream's own hosts), ``images`` (fan-out, usage rows), ``videos``
and ``tasks`` (CogVideoX-3 jobs and the bounded task table), ``image_tool`` (the Responses
door's hosted tool) and ``endpoints`` (the call's record in, an ASGI answer out; the edge
routes them). No module here imports Starlette. The shapes themselves are the library's
(:mod:`glmbridge.media`). See docs/media.md.
"""
