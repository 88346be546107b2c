"""Deprecated alias of :mod:`glmbridge.protocols.responses.door_response`: import from there."""

from glmbridge._moved import moved
from glmbridge.protocols.responses import door_response as _door_response

__getattr__ = moved(__name__, _door_response)
