"""Deprecated alias of :mod:`glmbridge.protocols.openai.upstream_response`: import from there."""

from typing import TYPE_CHECKING

from glmbridge._moved import moved
from glmbridge.protocols.openai import upstream_response as _upstream_response

if TYPE_CHECKING:  # the moved names, typed, for type checkers
    from glmbridge.protocols.openai.upstream_response import *  # noqa: F403

__getattr__ = moved(__name__, _upstream_response)
