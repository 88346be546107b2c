"""Deprecated alias of :mod:`glmbridge.protocols.gemini.door_stream`: import from there."""

from typing import TYPE_CHECKING

from glmbridge._moved import moved
from glmbridge.protocols.gemini import door_stream as _door_stream

if TYPE_CHECKING:  # the moved names, typed, for type checkers
    from glmbridge.protocols.gemini.door_stream import *  # noqa: F403

__getattr__ = moved(__name__, _door_stream)
