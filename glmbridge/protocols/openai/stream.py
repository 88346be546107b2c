"""Deprecated alias of :mod:`glmbridge.protocols.openai.upstream_stream`: import from there."""

from glmbridge._moved import moved
from glmbridge.protocols.openai import upstream_stream as _upstream_stream

__getattr__ = moved(__name__, _upstream_stream)
