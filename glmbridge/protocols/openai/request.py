"""Deprecated alias of :mod:`glmbridge.protocols.openai.upstream_request`: import from there."""

from glmbridge._moved import moved
from glmbridge.protocols.openai import upstream_request as _upstream_request

__getattr__ = moved(__name__, _upstream_request)
