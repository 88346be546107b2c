"""Deprecated alias of :mod:`glmbridge.protocols.responses.door_stream`: import from there."""

from glmbridge._moved import moved
from glmbridge.protocols.responses import door_stream as _door_stream

__getattr__ = moved(__name__, _door_stream)
