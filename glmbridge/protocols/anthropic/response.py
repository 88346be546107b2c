"""Deprecated alias of :mod:`glmbridge.protocols.anthropic.door_response`
and :mod:`glmbridge.protocols.anthropic.upstream_response`:
import from there."""

from typing import TYPE_CHECKING

from glmbridge._moved import moved
from glmbridge.protocols.anthropic import door_response as _door_response
from glmbridge.protocols.anthropic import upstream_response as _upstream_response

if TYPE_CHECKING:  # the moved names, typed, for type checkers
    from glmbridge.protocols.anthropic.door_response import *  # noqa: F403
    from glmbridge.protocols.anthropic.upstream_response import *  # noqa: F403

__getattr__ = moved(__name__, _door_response, _upstream_response)
