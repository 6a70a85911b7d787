"""Kafka Connect's logical types in their wire form, shared by the JSON and Avro
converters.

=========  ================================================  ======================
logical    Python value                                      wire form
=========  ================================================  ======================
Decimal    `decimal.Decimal` (schema parameter ``scale``)    unscaled integer as
                                                             big-endian two's-
                                                             complement bytes
Date       `datetime.date`                                   int days since epoch
Time       `datetime.time`                                   int ms since midnight
Timestamp  `datetime.datetime` (naive is taken as UTC)       int ms since epoch
=========  ================================================  ======================

Every function raises `ValueError` with a short reason for a value it cannot
convert; callers turn that into a `ConversionError` with the place.
"""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

from omconnect.connect.schema import DATE, DECIMAL, TIME, TIMESTAMP, Schema

EPOCH_DATE = dt.date(1970, 1, 1)
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MS_PER_DAY = 86_400_000
LOGICAL_NAMES = frozenset({DECIMAL, DATE, TIME, TIMESTAMP})


def decimal_scale(schema: Schema) -> int:
    """The ``scale`` parameter of a Decimal schema (0 when absent, as in Avro)."""
    raw = schema.params.get("scale", "0")
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"Decimal schema has a non-integer scale {raw!r}") from None


def unscaled(value: decimal.Decimal, scale: int) -> int:
    """The unscaled integer of ``value`` at ``scale`` (exact: a value with more
    fraction digits than ``scale`` is refused, fewer are padded)."""
    if not isinstance(value, decimal.Decimal):
        raise ValueError(f"Decimal takes decimal.Decimal, not {type(value).__name__}")
    if not value.is_finite():
        raise ValueError(f"Decimal cannot hold {value}")
    sign, digits, exponent = value.as_tuple()
    number = int("".join(map(str, digits)) or "0")
    shift = int(exponent) + scale
    if shift >= 0:
        number *= 10**shift
    else:
        number, rest = divmod(number, 10**-shift)
        if rest:
            raise ValueError(f"{value} has more than {scale} digits after the point")
    return -number if sign else number


def scaled(number: int, scale: int) -> decimal.Decimal:
    """``number * 10**-scale`` as an exact `decimal.Decimal` with that exponent."""
    digits = tuple(int(c) for c in str(abs(number)))
    return decimal.Decimal((1 if number < 0 else 0, digits, -scale))


def int_to_twos_complement(number: int) -> bytes:
    """Minimal big-endian two's-complement bytes, as Java's ``BigInteger.toByteArray``."""
    bits = number.bit_length() if number >= 0 else (~number).bit_length()
    return number.to_bytes(bits // 8 + 1, "big", signed=True)


def decimal_to_bytes(value: decimal.Decimal, scale: int) -> bytes:
    """Kafka's Decimal wire form of ``value`` at ``scale``."""
    return int_to_twos_complement(unscaled(value, scale))


def bytes_to_decimal(data: bytes, scale: int) -> decimal.Decimal:
    """The Decimal that Kafka's wire form ``data`` holds at ``scale``."""
    if not data:
        raise ValueError("Decimal bytes are empty")
    return scaled(int.from_bytes(data, "big", signed=True), scale)


def date_to_days(value: dt.date) -> int:
    """Days since 1970-01-01."""
    if not isinstance(value, dt.date) or isinstance(value, dt.datetime):
        raise ValueError(f"Date takes datetime.date, not {type(value).__name__}")
    return (value - EPOCH_DATE).days


def days_to_date(days: int) -> dt.date:
    """The date ``days`` after 1970-01-01."""
    try:
        return EPOCH_DATE + dt.timedelta(days=days)
    except OverflowError:
        raise ValueError(f"{days} days since the epoch is out of range") from None


def time_to_millis(value: dt.time) -> int:
    """Milliseconds since midnight (microseconds are truncated)."""
    if not isinstance(value, dt.time):
        raise ValueError(f"Time takes datetime.time, not {type(value).__name__}")
    seconds = (value.hour * 60 + value.minute) * 60 + value.second
    return seconds * 1000 + value.microsecond // 1000


def millis_to_time(millis: int) -> dt.time:
    """The time of day ``millis`` after midnight; 0 ≤ millis < one day."""
    if not 0 <= millis < MS_PER_DAY:
        raise ValueError(f"Time must be 0 <= ms < {MS_PER_DAY}, got {millis}")
    seconds, ms = divmod(millis, 1000)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return dt.time(hour, minute, second, ms * 1000)


def timestamp_to_millis(value: dt.datetime) -> int:
    """Milliseconds since the epoch (naive datetimes are UTC; sub-ms floored)."""
    if not isinstance(value, dt.datetime):
        raise ValueError(f"Timestamp takes datetime.datetime, not {type(value).__name__}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)
    delta = value - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def millis_to_timestamp(millis: int) -> dt.datetime:
    """The aware UTC datetime ``millis`` after the epoch."""
    try:
        return EPOCH + dt.timedelta(milliseconds=millis)
    except OverflowError:
        raise ValueError(f"{millis} ms since the epoch is out of range") from None


def to_wire(schema: Schema, value: Any) -> Any:
    """The wire form of a logical ``value`` of ``schema`` (bytes or int)."""
    name = schema.name
    if name == DECIMAL:
        return decimal_to_bytes(value, decimal_scale(schema))
    if name == DATE:
        return date_to_days(value)
    if name == TIME:
        return time_to_millis(value)
    return timestamp_to_millis(value)


def from_wire(schema: Schema, wire: Any) -> Any:
    """The logical value of ``schema`` for its wire form ``wire``."""
    name = schema.name
    if name == DECIMAL:
        if not isinstance(wire, bytes):
            raise ValueError(f"Decimal is encoded as bytes, not {type(wire).__name__}")
        return bytes_to_decimal(wire, decimal_scale(schema))
    if isinstance(wire, bool) or not isinstance(wire, int):
        raise ValueError(f"{name} is encoded as an integer, not {type(wire).__name__}")
    if name == DATE:
        return days_to_date(wire)
    if name == TIME:
        return millis_to_time(wire)
    return millis_to_timestamp(wire)
