"""Deprecated alias of :mod:`glmbridge.protocols.anthropic.door_stream`
and :mod:`glmbridge.protocols.anthropic.upstream_stream`:
import from there."""

from glmbridge._moved import moved
from glmbridge.protocols.anthropic import door_stream as _door_stream
from glmbridge.protocols.anthropic import upstream_stream as _upstream_stream

__getattr__ = moved(__name__, _door_stream, _upstream_stream)
