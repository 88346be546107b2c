"""Deprecated alias of :mod:`glmbridge.protocols.responses.door_request`: import from there."""

from glmbridge._moved import moved
from glmbridge.protocols.responses import door_request as _door_request

__getattr__ = moved(__name__, _door_request)
