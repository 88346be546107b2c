"""Reading the spent window and its reset (Beijing time) from 1308/1310 messages."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from glmbridge.quota import BEIJING, parse_quota_limits, parse_quota_reset

NOW = datetime(2026, 8, 27, 10, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("code", "message", "window", "utc"),
    [
        # continuedev/continue#13195 (the real English text)
        ("1308", "Usage limit reached for 5 hour. Your limit will reset at 2026-08-27 21:31:39",
         "5-hour", "2026-08-27T13:31:39+00:00"),
        # as the bridge's error table prefixes and annotates it
        ("1308", "[1308] Usage limit reached for 5 hour. Your limit will reset at "
                 "2026-08-27 21:31:39 (GLM quota or balance exhausted)",
         "5-hour", "2026-08-27T13:31:39+00:00"),
        # dirge-code/dirge#818 (Chinese variant)
        ("1308", "已达到 5 小时的使用上限。您的限额将在 2026-08-28 00:05:00 重置。",
         "5-hour", "2026-08-27T16:05:00+00:00"),
        ("1310", "Weekly/Monthly Limit Exhausted. Your limit will reset at 2026-09-01 08:00:00",
         "weekly/monthly", "2026-09-01T00:00:00+00:00"),
        ("1310", "Usage limit reached for 1 week. resets at 2026-09-01 08:00",
         "weekly", "2026-09-01T00:00:00+00:00"),
        ("1308", "limit will reset at 2026-08-27T13:31:39Z", "5-hour",
         "2026-08-27T13:31:39+00:00"),
    ],
)  # fmt: skip
def test_real_messages(code: str, message: str, window: str, utc: str) -> None:
    reset = parse_quota_reset(code, message, now=NOW)
    assert reset is not None
    assert (reset.window, reset.resets_at.isoformat()) == (window, utc)


def test_describe_names_window_both_clocks_and_the_wait() -> None:
    reset = parse_quota_reset(
        "1308", "Usage limit reached for 5 hour. Your limit will reset at 2026-08-27 21:31:39"
    )
    assert reset is not None
    text = reset.describe(NOW)
    assert text == (
        "the 5-hour quota window is spent; it resets at 2026-08-27 13:31 UTC (21:31 UTC+8), "
        "in 3 h 32 min"
    )
    assert reset.seconds_left(NOW) == pytest.approx(3 * 3600 + 31 * 60 + 39)


@pytest.mark.parametrize(
    ("code", "message"),
    [
        ("1302", "Rate limit reached for requests"),  # not a window code, no reset
        ("1308", "Usage limit reached for 5 hour."),  # no time
        ("1308", "reset at 2026-13-40 25:00:00"),  # not a date
        ("1310", "reset at 2027-08-27 21:31:39"),  # a year away: not believed
        (None, "busy until 2026-08-27 21:31:39"),  # a time, but no reset named
    ],
)
def test_unusable_messages(code: str | None, message: str) -> None:
    assert parse_quota_reset(code, message, now=NOW) is None


@given(st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 1)),
       st.text(st.characters(blacklist_categories=("Nd",)), max_size=30),
       st.sampled_from(["1308", "1310"]))  # fmt: skip
def test_any_beijing_time_round_trips(when: datetime, noise: str, code: str) -> None:
    when = when.replace(microsecond=0)
    message = f"{noise} Your limit will reset at {when:%Y-%m-%d %H:%M:%S}"
    reset = parse_quota_reset(code, message, now=when.replace(tzinfo=UTC))
    assert reset is not None
    assert reset.resets_at == when.replace(tzinfo=BEIJING)


def test_quota_endpoint_answers_are_read_tolerantly() -> None:
    from glmbridge.quota import parse_quota_limits

    ok = {"code": 200, "msg": "Operation successful", "success": True, "data": {"limits": [
        {"type": "TOKENS_LIMIT", "unit": 3, "number": 5, "percentage": 25,
         "nextResetTime": 1_788_000_000_000},
        {"type": "TOKENS_LIMIT", "unit": 6, "number": 1, "percentage": None},  # Lite: nulls
        {"type": "TIME_LIMIT", "unit": 5, "number": 1, "usage": 4000, "currentValue": 100},
        {"type": 7}, "garbage",
    ], "level": "max"}}  # fmt: skip
    windows = parse_quota_limits(ok)
    assert windows is not None
    assert [(w.kind, w.window, w.used_percent) for w in windows] == [
        ("TOKENS_LIMIT", "5-hour", 25.0),
        ("TOKENS_LIMIT", "weekly", None),
        ("TIME_LIMIT", "monthly", 2.5),
    ]
    assert windows[0].resets_at == datetime.fromtimestamp(1_788_000_000, UTC)
    # HTTP 200 with a failed envelope (a bad key), or no data: not usable
    assert parse_quota_limits({"code": 1001, "msg": "token expired", "success": False}) is None
    assert parse_quota_limits({"success": True, "data": None}) is None
    assert parse_quota_limits([1, 2]) is None


#: Quota answers no one foresaw (issue 24, item 3): every field of the wrong type or range.
HOSTILE_LIMITS = [
    {"type": "TOKENS_LIMIT", "unit": [3], "number": 5, "percentage": 50},
    {"type": "TOKENS_LIMIT", "unit": 3, "number": 5, "nextResetTime": 1e20},
    {"type": "TOKENS_LIMIT", "unit": {"a": 1}, "number": 10**400, "percentage": 10**400},
    {"type": "TOKENS_LIMIT", "unit": 3, "number": 1e308, "usage": 1e-320, "currentValue": 1e308},
    {"type": "TOKENS_LIMIT", "unit": True, "nextResetTime": -1e20, "percentage": "95"},
    {"type": "T" * 10_000, "unit": 3},
    {"type": ["TOKENS_LIMIT"]},
    {"type": "TIME_LIMIT", "unit": 3.5, "number": -1, "nextResetTime": 2**70},
    None,
    7,
    "x",
    [],
]


def test_every_field_of_a_quota_answer_is_untrusted() -> None:
    windows = parse_quota_limits({"success": True, "code": 200,
                                  "data": {"limits": HOSTILE_LIMITS}})  # fmt: skip
    assert windows is not None and len(windows) == 6
    for window in windows:
        assert window.resets_at is None
        assert window.used_percent is None or math.isfinite(window.used_percent)
    assert windows[0].window == "unknown" and windows[0].used_percent == 50.0
    assert windows[2].window == "unknown" and windows[2].used_percent is None


@pytest.mark.parametrize(
    ("code", "message", "window"),
    [
        # the usage limits of September 2026 name a reset (tetsuo-ai/agenc-core PR#2491)
        ("1316", "Usage limit reached. Your limit will reset at 2026-08-27 21:31:39", "usage"),
        ("1321", "Credit limit reached for 5 hour. Resets at 2026-08-27 21:31:39", "5-hour"),
        # any code, or none, whose message names a reset counts too
        ("1302", "Rate limit reached; reset at 2026-08-27 21:31:39", "usage"),
        (None, "您的限额将在 2026-08-27 21:31:39 重置", "usage"),
    ],
)
def test_any_message_naming_a_reset_is_read(code: str | None, message: str, window: str) -> None:
    found = parse_quota_reset(code, message, now=NOW)
    assert found is not None and found.window == window
    assert found.resets_at == datetime(2026, 8, 27, 13, 31, 39, tzinfo=UTC)
