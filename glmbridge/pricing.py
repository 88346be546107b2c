"""What a request costs on Z.ai's Coding Plan: credits, from the tokens and the hour.

The credit plans of 2026-07-30 bill each request as
``credits = (input × m_in + cached × m_cached + output × m_out) / 10,000`` with per-model
multipliers (GLM-5.3 6.9/1.7/24, GLM-4.7 4.6/1.2/16), and off-peak hours cost half
(omacom/omarchy PR#7566 citing docs.z.ai/devpack/overview; ``../shared/reference/
user-demand.md`` §0). Allowances per window: Lite 2,000 credits per 5 h and 10,000 per
week, Pro 12,000/60,000, Max 28,000/140,000.

The peak window is disputed: steipete/CodexBar PR#2721 says Monday–Friday 14:00–18:00
UTC+8 with weekends off-peak, a Hacker News thread (item 48752461) "14:00–18:00 daily
(UTC+8)". The default here is the daily one (it never under-counts);
``weekdays_only=True`` selects the other reading. ``input`` is the uncached input (the
three token counts are disjoint, as in :class:`glmbridge.ir.Usage`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

__all__ = ["ALLOWANCES", "MULTIPLIERS", "PriceTable", "is_peak"]

_BEIJING = timezone(timedelta(hours=8))

#: Credit multipliers per model: (input, cached input, output). GLM-5.3-Flash 2.3/0.56/8,
#: "~3x the quota of GLM-5.3" (stefandevo/glm-acp-agent#96 citing the docs;
#: Yeachan-Heo/gajae-code PR#5026). Price what *served* a request (its answer's ``model``):
#: on the Coding Plan a ``glm-4.7`` request is answered, and billed, as GLM-5.3-Flash.
MULTIPLIERS: dict[str, tuple[float, float, float]] = {
    "glm-5.3": (6.9, 1.7, 24.0),
    "glm-5.3-flash": (2.3, 0.56, 8.0),
    "glm-4.7": (4.6, 1.2, 16.0),
}
#: Credits per window by plan: (5-hour, weekly).
ALLOWANCES: dict[str, tuple[int, int]] = {
    "lite": (2_000, 10_000),
    "pro": (12_000, 60_000),
    "max": (28_000, 140_000),
}
_PEAK_HOURS = range(14, 18)  # 14:00-18:00 UTC+8
_OFF_PEAK_FACTOR = 0.5


def is_peak(when: datetime, *, weekdays_only: bool = False) -> bool:
    """Whether ``when`` (aware; naive means UTC) falls in Z.ai's peak window."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    local = when.astimezone(_BEIJING)
    if weekdays_only and local.weekday() >= 5:
        return False
    return local.hour in _PEAK_HOURS


@dataclass(frozen=True, slots=True)
class PriceTable:
    """Multipliers per model (built-in ones, overridden or extended by ``extra``)."""

    multipliers: Mapping[str, tuple[float, float, float]]
    weekdays_only: bool = False

    @classmethod
    def with_overrides(
        cls, extra: Mapping[str, tuple[float, float, float]] | None = None, **kw: bool
    ) -> PriceTable:
        """The built-in table with ``extra`` entries on top."""
        return cls({**MULTIPLIERS, **(extra or {})}, **kw)

    def credits(
        self, model: str, input_tokens: int, cached: int, output: int, *, peak: bool
    ) -> float | None:
        """Credits for one request (``None``: the model has no known multipliers)."""
        m = self.multipliers.get(model.lower())
        if m is None:
            return None
        raw = (input_tokens * m[0] + cached * m[1] + output * m[2]) / 10_000
        return raw if peak else raw * _OFF_PEAK_FACTOR
