"""Deprecated module paths: a module that moved leaves an alias that still answers.

An alias module calls :func:`moved` and binds the result as its module-level
``__getattr__`` (PEP 562), so ``from old.path import name`` keeps working and warns
:class:`DeprecationWarning` naming where ``name`` lives now.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any

__all__ = ["moved"]


def moved(old: str, *homes: ModuleType) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the alias ``old`` that finds names in ``homes``."""

    def __getattr__(name: str) -> Any:
        for home in homes:
            if hasattr(home, name):
                warnings.warn(
                    f"{old} is deprecated; import {name} from {home.__name__}",
                    DeprecationWarning,
                    stacklevel=2,
                )
                return getattr(home, name)
        raise AttributeError(f"module {old!r} has no attribute {name!r}")

    return __getattr__
