"""Deprecated alias of :mod:`glmbridge.protocols.responses.door_request`: import from there."""

from typing import TYPE_CHECKING

from glmbridge._moved import moved
from glmbridge.protocols.responses import door_request as _door_request

if TYPE_CHECKING:  # the moved names, typed, for type checkers
    from glmbridge.protocols.responses.door_request import *  # noqa: F403

__getattr__ = moved(__name__, _door_request)
