"""Deprecated alias of :mod:`glmbridge.protocols.openai.upstream_response`: import from there."""

from glmbridge._moved import moved
from glmbridge.protocols.openai import upstream_response as _upstream_response

__getattr__ = moved(__name__, _upstream_response)
