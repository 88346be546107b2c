"""Coding Plan credits: (in×m_in + cached×m_cached + out×m_out)/10,000, half off-peak."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from glmbridge.pricing import PriceTable, is_peak


def test_credit_formula_from_the_reference() -> None:
    table = PriceTable.with_overrides()
    # GLM-5.3: 6.9 / 1.7 / 24 per token, /10,000 (user-demand.md §0)
    assert table.credits("glm-5.3", 10_000, 20_000, 1_000, peak=True) == pytest.approx(
        (10_000 * 6.9 + 20_000 * 1.7 + 1_000 * 24) / 10_000
    )
    assert table.credits("GLM-4.7", 10_000, 0, 0, peak=False) == pytest.approx(4.6 / 2)
    assert table.credits("glm-4.5-air", 1, 1, 1, peak=True) is None
    custom = PriceTable.with_overrides({"glm-4.5-air": (1.0, 0.5, 2.0)})
    assert custom.credits("glm-4.5-air", 10_000, 0, 10_000, peak=True) == pytest.approx(3.0)


@pytest.mark.parametrize(
    ("utc", "daily", "weekdays"),
    [
        (datetime(2026, 8, 27, 6, 0, tzinfo=UTC), True, True),  # Thu 14:00 UTC+8
        (datetime(2026, 8, 27, 9, 59, tzinfo=UTC), True, True),  # Thu 17:59 UTC+8
        (datetime(2026, 8, 27, 10, 0, tzinfo=UTC), False, False),  # Thu 18:00 UTC+8
        (datetime(2026, 8, 29, 7, 0, tzinfo=UTC), True, False),  # Sat 15:00 UTC+8
        (datetime(2026, 8, 27, 5, 59), False, False),  # naive = UTC
    ],
)
def test_peak_window(utc: datetime, daily: bool, weekdays: bool) -> None:
    assert is_peak(utc) is daily
    assert is_peak(utc, weekdays_only=True) is weekdays
