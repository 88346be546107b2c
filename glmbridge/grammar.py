"""Deprecated alias of :mod:`glmbridge.protocols.anthropic.grammar`: import from there."""

from glmbridge._moved import moved
from glmbridge.protocols.anthropic import grammar as _grammar

__getattr__ = moved(__name__, _grammar)
