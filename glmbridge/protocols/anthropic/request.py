"""Deprecated alias of :mod:`glmbridge.protocols.anthropic.door_request`
and :mod:`glmbridge.protocols.anthropic.upstream_request`:
import from there."""

from typing import TYPE_CHECKING

from glmbridge._moved import moved
from glmbridge.protocols.anthropic import door_request as _door_request
from glmbridge.protocols.anthropic import upstream_request as _upstream_request

if TYPE_CHECKING:  # the moved names, typed, for type checkers
    from glmbridge.protocols.anthropic.door_request import *  # noqa: F403
    from glmbridge.protocols.anthropic.upstream_request import *  # noqa: F403

__getattr__ = moved(__name__, _door_request, _upstream_request)
