"""Deprecated alias of :mod:`glmbridge.protocols.anthropic.door_stream`
and :mod:`glmbridge.protocols.anthropic.upstream_stream`:
import from there."""

from typing import TYPE_CHECKING

from glmbridge._moved import moved
from glmbridge.protocols.anthropic import door_stream as _door_stream
from glmbridge.protocols.anthropic import upstream_stream as _upstream_stream

if TYPE_CHECKING:  # the moved names, typed, for type checkers
    from glmbridge.protocols.anthropic.door_stream import *  # noqa: F403
    from glmbridge.protocols.anthropic.upstream_stream import *  # noqa: F403

__getattr__ = moved(__name__, _door_stream, _upstream_stream)
