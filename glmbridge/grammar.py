"""Deprecated alias of :mod:`glmbridge.protocols.anthropic.grammar`: import from there."""

from typing import TYPE_CHECKING

from glmbridge._moved import moved
from glmbridge.protocols.anthropic import grammar as _grammar

if TYPE_CHECKING:  # the moved names, typed, for type checkers
    from glmbridge.protocols.anthropic.grammar import *  # noqa: F403

__getattr__ = moved(__name__, _grammar)
