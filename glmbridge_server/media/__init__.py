"""The media wing: image and video generation on Z.ai's pay-as-you-go media APIs.

``access`` (which keys, which upstream), ``client`` (calls and capped downloads from the
media upstream's own hosts), ``images`` (fan-out, usage rows), ``videos`` and ``tasks``
(CogVideoX-3 jobs and the bounded task table), and ``routes``, the one module that speaks
HTTP. The shapes themselves are the library's (:mod:`glmbridge.media`). See docs/media.md.
"""
