"""Deprecated alias of :mod:`glmbridge.protocols.responses.door_response`: import from there."""

from typing import TYPE_CHECKING

from glmbridge._moved import moved
from glmbridge.protocols.responses import door_response as _door_response

if TYPE_CHECKING:  # the moved names, typed, for type checkers
    from glmbridge.protocols.responses.door_response import *  # noqa: F403

__getattr__ = moved(__name__, _door_response)
