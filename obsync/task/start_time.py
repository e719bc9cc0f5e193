"""The task's `sync.start_time`: where incremental sync starts, as the task file writes it, read into an aware
datetime in UTC (`parse_start_time`). The binlog search for it is `obsync.connectors.mysql.binlog.start_time`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_EVEN, Decimal, InvalidOperation
from typing import Any

UTC = UTC
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_NUMBER = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)")


def parse_start_time(value: str | int | float) -> datetime:
    """A `start_time` option value as an aware datetime in UTC.

    Accepted: epoch seconds as an int or float, or as a numeric string ("1714557600", "1714557600.25");
    an ISO-8601 date-time as read by `datetime.fromisoformat` ("2024-05-01T12:00:00+02:00",
    "2024-05-01 10:00:00Z", "2024-05-01T10:00:00.5", a date alone "2024-05-01" meaning its midnight).
    An ISO value without a UTC offset is taken as UTC (not the local time zone of the machine running
    obsync). A bare number is always epoch seconds, never a year. Anything else raises ValueError.
    """
    if isinstance(value, bool) or not isinstance(value, (str, int, float, Decimal)):
        raise ValueError(f"start_time must be an ISO-8601 date-time or epoch seconds, not {value!r}")
    if isinstance(value, str):
        text = value.strip()
        if not text:
            raise ValueError("start_time is empty: give an ISO-8601 date-time (e.g. 2024-05-01T12:00:00Z) "
                             "or epoch seconds")
        if _NUMBER.fullmatch(text):
            return _from_epoch(text, value)
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"start_time {value!r} is neither an ISO-8601 date-time (e.g. 2024-05-01T12:00:00Z, "
                             "2024-05-01 12:00:00+02:00; without an offset it is UTC) nor epoch seconds") from None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        try:
            return parsed.astimezone(UTC)
        except OverflowError:
            raise ValueError(f"start_time {value!r} is out of range") from None
    return _from_epoch(value, value)


def _from_epoch(v: str | int | float | Decimal, original: Any) -> datetime:
    try:
        seconds = Decimal(repr(v)) if isinstance(v, float) else Decimal(v)
    except InvalidOperation:  # pragma: no cover - the regex lets only numbers through
        raise ValueError(f"start_time {original!r} is not a number") from None
    if not seconds.is_finite():
        raise ValueError(f"start_time {original!r} is not a finite number of epoch seconds")
    whole = int(seconds.to_integral_value(rounding=ROUND_FLOOR))
    micros = int(((seconds - whole) * 1_000_000).to_integral_value(rounding=ROUND_HALF_EVEN))
    try:
        return _EPOCH + timedelta(seconds=whole, microseconds=micros)
    except OverflowError:
        raise ValueError(f"start_time {original!r} is out of range for epoch seconds") from None
