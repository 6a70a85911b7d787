"""Where a table (or query) has been read up to: the source offset of the SQL source.

A `Position` holds the last row's timestamp and/or incrementing value, as the mode
uses them (Confluent's ``TimestampIncrementingOffset``). Its source offset is
``{"incrementing": 42}``, ``{"timestamp": "2024-05-01T10:00:00.000001"}`` or both;
the timestamp is ISO 8601 text of the column's value, with its UTC offset when the
column has one, so reading it back gives the same value to compare with. Bulk mode
keeps no position (``{}``): every poll reads the whole table.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from omconnect.connect.records import SourceOffset
from omconnect.connectors.sql.source_config import Mode

TIMESTAMP_KEY = "timestamp"
INCREMENTING_KEY = "incrementing"


class PositionError(ValueError):
    """A row's incrementing or timestamp value cannot be used as a position."""


@dataclass(frozen=True, slots=True)
class Position:
    """The last row read: its timestamp and incrementing value (None: not yet known,
    read from the beginning)."""

    timestamp: dt.datetime | None = None
    incrementing: int | None = None

    def to_offset(self, mode: Mode) -> dict[str, Any]:
        """The source offset of this position in ``mode``."""
        offset: dict[str, Any] = {}
        if mode.uses_timestamp and self.timestamp is not None:
            offset[TIMESTAMP_KEY] = self.timestamp.isoformat()
        if mode.uses_incrementing and self.incrementing is not None:
            offset[INCREMENTING_KEY] = self.incrementing
        return offset

    @classmethod
    def from_offset(cls, mode: Mode, offset: SourceOffset | None) -> Position:
        """The position a stored source offset stands for; parts the mode does not use,
        or that are malformed, are ignored (that part starts from the beginning)."""
        if not offset:
            return cls()
        timestamp = offset.get(TIMESTAMP_KEY) if mode.uses_timestamp else None
        incrementing = offset.get(INCREMENTING_KEY) if mode.uses_incrementing else None
        return cls(
            _parse_timestamp(timestamp) if isinstance(timestamp, str) else None,
            incrementing
            if isinstance(incrementing, int) and not isinstance(incrementing, bool)
            else None,
        )

    def after_row(self, mode: Mode, timestamps: Sequence[Any], incrementing: Any) -> Position:
        """The position just after a row whose timestamp column values (in
        ``timestamp.column.name`` order; the first non-null one counts, as in
        COALESCE) and incrementing value are given. A null part keeps the current one.
        `PositionError` if a value is not a timestamp or an integer."""
        timestamp = self.timestamp
        if mode.uses_timestamp:
            first = next((v for v in timestamps if v is not None), None)
            timestamp = as_timestamp(first) if first is not None else timestamp
        number = self.incrementing
        if mode.uses_incrementing and incrementing is not None:
            number = as_incrementing(incrementing)
        return Position(timestamp, number)


def as_timestamp(value: Any) -> dt.datetime:
    """A timestamp column value as a datetime (a date is its midnight; text, as SQLite
    returns from a custom query, is parsed as ISO 8601)."""
    if isinstance(value, dt.datetime):
        return value
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time())
    if isinstance(value, str):
        return _parse_timestamp(value)
    raise PositionError(f"a timestamp column holds {type(value).__name__} {value!r}")


def as_incrementing(value: Any) -> int:
    """An incrementing column value as an int (integral decimals are accepted)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, decimal.Decimal) and value == value.to_integral_value():
        return int(value)
    raise PositionError(f"the incrementing column holds {type(value).__name__} {value!r}")


def _parse_timestamp(text: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        raise PositionError(f"not an ISO 8601 timestamp: {text!r}") from None
