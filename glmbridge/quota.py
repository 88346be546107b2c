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

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

__all__ = [
    "BEIJING",
    "QUOTA_WINDOW_CODES",
    "QuotaReset",
    "QuotaWindow",
    "names_reset",
    "parse_quota_limits",
    "parse_quota_reset",
]

#: Z.ai's clock: the reset times in its messages are naive times in UTC+8.
BEIJING = timezone(timedelta(hours=8), "UTC+8")
#: Codes whose message names a window and its reset: 1308/1310, and the usage limits of
#: September 2026, 1316-1321, which "name a reset" too (tetsuo-ai/agenc-core PR#2491). Any
#: other code counts when its message says "reset" with a time (:func:`names_reset`).
QUOTA_WINDOW_CODES = frozenset({"1308", "1310", "1316", "1317", "1318", "1319", "1320", "1321"})
_RESET_WORD = re.compile(r"reset|重置", re.IGNORECASE)
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
        code: the business code (``1308``, ``1310``, ``1316``-``1321``, …).
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
    return {"1308": "5-hour", "1310": "weekly/monthly"}.get(code, "usage")


def names_reset(message: str) -> bool:
    """Whether ``message`` says a limit resets at a date-time ("… will reset at
    2026-08-27 21:31:39", "… 重置")."""
    return _RESET_WORD.search(message) is not None and _TIME.search(message) is not None


def parse_quota_reset(
    code: str | None, message: str, *, now: datetime | None = None
) -> QuotaReset | None:
    """The window and reset time in a usage-limit message (``1308``, ``1310``,
    ``1316``-``1321``, or any code whose message names a reset), else ``None``.

    Only the first date-time in the message counts; without an explicit offset it is
    Beijing time. A reset more than 32 days ahead is not believed (``None``); one in
    the past is returned as is (the window has reset already: ``seconds_left`` is 0).
    """
    if code not in QUOTA_WINDOW_CODES and not names_reset(message):
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
    return QuotaReset(code or "429", _window(code or "", message), resets_at)


@dataclass(frozen=True, slots=True)
class QuotaWindow:
    """One window from Z.ai's quota endpoint (``/api/monitor/usage/quota/limit``).

    Attributes:
        kind: ``TOKENS_LIMIT``, ``CREDIT_LIMIT`` or ``TIME_LIMIT`` (the MCP tools).
        window: ``5-hour``, ``weekly``, ``monthly`` or ``<n>-<unit>``.
        used_percent: how much of it is used (0-100), if the endpoint said.
        resets_at: when it resets (UTC), if the endpoint said.
    """

    kind: str
    window: str
    used_percent: float | None
    resets_at: datetime | None


# unit codes seen in the endpoint's answers: 3 hours (number 5: the 5-hour window),
# 5 months (TIME_LIMIT, the MCP window), 6 weeks (user-demand.md §0; AIMeter, CodexBar).
_UNITS = {1: "minute", 2: "day", 3: "hour", 4: "day", 5: "month", 6: "week"}


def _number(value: object) -> float | None:
    """A finite number, or ``None`` (wrong type, NaN, infinite, or past a float)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        number = float(value)
    except OverflowError:  # an integer past 1.8e308
        return None
    return number if math.isfinite(number) else None


# Reset times outside these years are nonsense (``nextResetTime: 1e20`` was sent once).
_EARLIEST_RESET = datetime(2000, 1, 1, tzinfo=UTC).timestamp() * 1000
_LATEST_RESET = datetime(2200, 1, 1, tzinfo=UTC).timestamp() * 1000
_MAX_TYPE = 64


def parse_quota_limits(payload: object) -> list[QuotaWindow] | None:
    """The windows in a quota-endpoint answer, read tolerantly; ``None`` when the envelope
    says it failed (it answers HTTP 200 even for a bad key: caidaoli/ccLoad PR#117).

    Shape: ``{"success": true, "code": 200, "data": {"limits": [{"type": "TOKENS_LIMIT",
    "unit": 3, "number": 5, "percentage": 25, "nextResetTime": <ms>, "usage": …,
    "currentValue": …, "remaining": …}], "level": "pro"}}``; Lite plans send null counts
    (nesquena/hermes-webui PR#7203), unknown fields and types are skipped. Every field is
    untrusted: a value of the wrong type, not finite, or a reset time outside 2000-2200 is
    read as absent; this never raises.
    """
    if not isinstance(payload, dict):
        return None
    if payload.get("success") is False or payload.get("code") not in (None, 200, "200"):
        return None
    data = payload.get("data")
    limits = data.get("limits") if isinstance(data, dict) else None
    if not isinstance(limits, list):
        return None
    out: list[QuotaWindow] = []
    for item in limits:
        kind = item.get("type") if isinstance(item, dict) else None
        if not isinstance(kind, str) or not 0 < len(kind) <= _MAX_TYPE:
            continue
        raw_unit = item.get("unit")
        unit = _UNITS.get(raw_unit) if type(raw_unit) is int else None
        number = _number(item.get("number"))
        if unit == "week" or (unit == "day" and number == 7):
            window = "weekly"
        elif unit == "month" and number in (None, 1.0):
            window = "monthly"
        elif unit and number and 0 < number < 1e6:
            window = f"{number:g}-{unit}"
        else:
            window = "unknown"
        percent = _number(item.get("percentage"))
        total, current = _number(item.get("usage")), _number(item.get("currentValue"))
        if percent is None and total and current is not None:
            percent = _number(100.0 * current / total)
        reset_ms = _number(item.get("nextResetTime"))
        resets = None
        if reset_ms is not None and _EARLIEST_RESET <= reset_ms <= _LATEST_RESET:
            resets = datetime.fromtimestamp(reset_ms / 1000, UTC)
        out.append(QuotaWindow(kind, window, percent, resets))
    return out
