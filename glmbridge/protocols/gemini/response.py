"""Deprecated alias of :mod:`glmbridge.protocols.gemini.door_response`: import from there."""

from glmbridge._moved import moved
from glmbridge.protocols.gemini import door_response as _door_response

__getattr__ = moved(__name__, _door_response)
