"""Z.ai's Coding Plan quota windows: which window ran out and when it resets (codes 1308/1310).

Z.ai answers a spent window with ``429`` and the reset time inside the message, as a
naive **Beijing time** (UTC+8), with no ``Retry-After`` header:

* ``1308`` "Usage limit reached for 5 hour. Your limit will reset at 2026-08-27 21:31:39"
  (continuedev/continue#13195; hugalafutro/model-hotel PR#955: Beijing time), or in
  Chinese "已达到 5 小时的使用上限。您的限额将在 2026-08-27 21:31:39 重置。"
  (dirge-code/dirge#818); the docs' template is "usage limit reached for {number}
  {unit}; resets at ${next_flush_time}" (wire-specs A.11);
* ``1310`` "Weekly/Monthly Limit Exhausted. Your limit will reset at …"
  (zai-org/feedback#316).

:func:`parse_quota_reset` reads the window and the reset instant from such a message,
tolerantly (English or Chinese, seconds optional, an explicit offset honoured); the
server cools the key until then instead of retrying it every minute, and tells the
client which window ran out and when it resets (:meth:`QuotaReset.describe`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

__all__ = ["BEIJING", "QUOTA_WINDOW_CODES", "QuotaReset", "parse_quota_reset"]

#: Z.ai's clock: the reset times in its messages are naive times in UTC+8.
BEIJING = timezone(timedelta(hours=8), "UTC+8")
#: Codes whose message names a window and its reset.
QUOTA_WINDOW_CODES = frozenset({"1308", "1310"})
# A reset further away than this is not believed (a garbled or unit-confused message).
_MAX_AHEAD = timedelta(days=32)

_TIME = re.compile(
    r"(?P<date>\d{4}-\d{1,2}-\d{1,2})[ T](?P<h>\d{1,2}):(?P<m>\d{2})(?::(?P<s>\d{2}))?"
    r"(?:\.\d+)?\s*(?P<tz>Z|[+-]\d{2}:?\d{2})?"
)
_EN_WINDOW = re.compile(r"for\s+(\d+)\s*(hour|day|week|month)s?", re.IGNORECASE)
_CN_WINDOW = re.compile(r"(\d+)\s*(小时|天|周|个月)")
_CN_UNITS = {"小时": "hour", "天": "day", "周": "week", "个月": "month"}


@dataclass(frozen=True, slots=True)
class QuotaReset:
    """A spent quota window.

    Attributes:
        code: the business code (``1308`` or ``1310``).
        window: a human name: ``5-hour``, ``weekly``, ``monthly``, ``weekly/monthly``.
        resets_at: when it resets (timezone-aware, UTC).
    """

    code: str
    window: str
    resets_at: datetime

    def seconds_left(self, now: datetime | None = None) -> float:
        """Seconds from ``now`` (default: the current time) to the reset, at least 0."""
        now = now or datetime.now(UTC)
        return max(0.0, (self.resets_at - now).total_seconds())

    def describe(self, now: datetime | None = None) -> str:
        """ "the 5-hour window is spent; it resets at 13:31 UTC (21:31 UTC+8), in 2 h 5 min"."""
        left = self.seconds_left(now)
        utc = self.resets_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
        local = self.resets_at.astimezone(BEIJING).strftime("%H:%M UTC+8")
        when = f"{utc} ({local}), in {_span(left)}"
        return f"the {self.window} quota window is spent; it resets at {when}"


def _span(seconds: float) -> str:
    minutes = int(seconds // 60 + (1 if seconds % 60 else 0))
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"


def _window(code: str, message: str) -> str:
    found = _EN_WINDOW.search(message)
    if found is not None:
        number, unit = found.group(1), found.group(2).lower()
    else:
        cn = _CN_WINDOW.search(message)
        if cn is None:
            number, unit = "", ""
        else:
            number, unit = cn.group(1), _CN_UNITS[cn.group(2)]
    if unit and number == "1" and unit in ("week", "month"):
        return f"{unit}ly"
    if unit:
        return f"{number}-{unit}"
    lower = message.lower()
    weekly = "week" in lower or "每周" in message or "周限额" in message
    monthly = "month" in lower or "每月" in message or "月限额" in message
    if weekly and monthly:
        return "weekly/monthly"
    if weekly or monthly:
        return "weekly" if weekly else "monthly"
    return "5-hour" if code == "1308" else "weekly/monthly"


def parse_quota_reset(
    code: str | None, message: str, *, now: datetime | None = None
) -> QuotaReset | None:
    """The window and reset time in a ``1308``/``1310`` message, else ``None``.

    Only the first date-time in the message counts; without an explicit offset it is
    Beijing time. A reset more than 32 days ahead is not believed (``None``); one in
    the past is returned as is (the window has reset already: ``seconds_left`` is 0).
    """
    if code not in QUOTA_WINDOW_CODES:
        return None
    found = _TIME.search(message)
    if found is None:
        return None
    try:
        year, month, day = (int(p) for p in found["date"].split("-"))
        naive = datetime(year, month, day, int(found["h"]), int(found["m"]), int(found["s"] or 0))
    except ValueError:
        return None
    tz = BEIJING
    if found["tz"]:
        text = found["tz"]
        if text == "Z":
            tz = UTC
        else:
            sign = -1 if text[0] == "-" else 1
            digits = text[1:].replace(":", "")
            tz = timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:])))
    resets_at = naive.replace(tzinfo=tz).astimezone(UTC)
    if resets_at - (now or datetime.now(UTC)) > _MAX_AHEAD:
        return None
    return QuotaReset(code, _window(code, message), resets_at)
