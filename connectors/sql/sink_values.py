"""Connect values back to database values, by schema name (pure).

=====================================  ==============================================
schema (name)                          database value
=====================================  ==============================================
Decimal                                `decimal.Decimal`; scale 0 → int (BIGINT
                                       UNSIGNED); SQLite: exact text
io.debezium.time.Date (days), Date     `datetime.date`
io.debezium.time.(Micro|Nano)Time,     MySQL: `datetime.timedelta` (may be negative
Time                                   or > 24 h); others: `datetime.time`, so only
                                       0 ≤ t < 24 h (else a `ValueError`)
io.debezium.time.(Micro|Nano)Timestamp naive `datetime.datetime` (wall clock)
io.debezium.time.ZonedTimestamp (ISO), aware UTC `datetime.datetime` for PostgreSQL,
Timestamp                              naive UTC elsewhere (sessions run in UTC)
Year, Enum, EnumSet, Bits              int, str, str, bytes (as they come)
io.debezium.data.Json                  JSON text
ARRAY / MAP / STRUCT, schemaless       JSON text
dict or list
=====================================  ==============================================

Every function raises `ValueError` with a short reason for a value it cannot
convert; the caller names the field and turns it into a `RecordError`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Callable
from typing import Any

from omconnect.connect.schema import DATE, DECIMAL, TIME, TIMESTAMP, Schema, Struct, Type
from omconnect.connectors.sql import dialects as d
from omconnect.connectors.sql.dialects import DialectRules

EPOCH_DATE = dt.date(1970, 1, 1)
EPOCH_NAIVE = dt.datetime(1970, 1, 1)
MICROS_PER_DAY = 86_400_000_000

# Microseconds per unit of each integer time type (nanos are divided, see _micros).
_TIME_UNITS = {d.DBZ_TIME: 1000, d.DBZ_MICRO_TIME: 1, d.DBZ_NANO_TIME: -1000}
_TIMESTAMP_UNITS = {d.DBZ_TIMESTAMP: 1000, d.DBZ_MICRO_TIMESTAMP: 1, d.DBZ_NANO_TIMESTAMP: -1000}


def to_db_value(rules: DialectRules, schema: Schema | None, value: Any) -> Any:
    """The value to bind for a column of ``schema`` (None: schemaless)."""
    if value is None:
        return None
    if schema is None:
        return json_text(value) if isinstance(value, dict | list) else value
    convert = _BY_NAME.get(schema.name or "")
    if convert is not None:
        return convert(rules, schema, value)
    if schema.type in (Type.ARRAY, Type.MAP, Type.STRUCT):
        return json_text(value)
    return value


def json_text(value: Any) -> str:
    """Compact JSON text of a plain value (structs as objects, bytes/dates as str)."""
    if isinstance(value, Struct):
        value = value.as_dict()
    return json.dumps(value, separators=(",", ":"), default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Struct):
        return value.as_dict()
    if isinstance(value, bytes | bytearray):
        return bytes(value).hex()
    return str(value)


def _decimal(rules: DialectRules, schema: Schema, value: Any) -> Any:
    number = value if isinstance(value, decimal.Decimal) else _parse_decimal(value)
    if not number.is_finite():
        raise ValueError(f"{number} is not a finite decimal")
    if rules.decimals_as_text:
        return format(number, "f")
    if schema.params.get("scale", "0") == "0" and number == number.to_integral_value():
        return int(number)
    return number


def _parse_decimal(value: Any) -> decimal.Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ValueError(f"a decimal must be a number, not {type(value).__name__}")
    try:
        return decimal.Decimal(str(value))
    except decimal.InvalidOperation:
        raise ValueError(f"{value!r} is not a decimal number") from None


def _date(rules: DialectRules, schema: Schema, value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    days = _integer(value, "days")
    try:
        return EPOCH_DATE + dt.timedelta(days=days)
    except OverflowError:
        raise ValueError(f"{days} days since 1970-01-01 is out of the date range") from None


def _time(rules: DialectRules, schema: Schema, value: Any) -> dt.time | dt.timedelta:
    if isinstance(value, dt.time):
        micros = ((value.hour * 60 + value.minute) * 60 + value.second) * 1_000_000
        micros += value.microsecond
    else:
        micros = _micros(_integer(value, "time"), _TIME_UNITS.get(schema.name or "", 1000))
    if rules.time_as_timedelta:
        return dt.timedelta(microseconds=micros)
    if not 0 <= micros < MICROS_PER_DAY:
        raise ValueError(
            f"time of {micros} µs is outside 00:00..24:00; a {rules.name} TIME cannot hold it"
        )
    seconds, fraction = divmod(micros, 1_000_000)
    return dt.time(seconds // 3600, seconds // 60 % 60, seconds % 60, fraction)


def _local_timestamp(rules: DialectRules, schema: Schema, value: Any) -> dt.datetime:
    micros = _micros(_integer(value, "timestamp"), _TIMESTAMP_UNITS[schema.name or ""])
    try:
        return EPOCH_NAIVE + dt.timedelta(microseconds=micros)
    except OverflowError:
        raise ValueError(f"timestamp {value} is out of the datetime range") from None


def _zoned_timestamp(rules: DialectRules, schema: Schema, value: Any) -> dt.datetime:
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO-8601 timestamp") from None
    if not isinstance(value, dt.datetime):
        raise ValueError(
            f"a zoned timestamp must be text or a datetime, not {type(value).__name__}"
        )
    if value.tzinfo is None:
        value = value.replace(tzinfo=dt.UTC)  # as Kafka's converters read a naive one
    utc = value.astimezone(dt.UTC)
    return utc if rules.aware_timestamps else utc.replace(tzinfo=None)


def _json(rules: DialectRules, schema: Schema, value: Any) -> str:
    return value if isinstance(value, str) else json_text(value)


def _integer(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"a {what} must be an integer, not {type(value).__name__}")
    return value


def _micros(amount: int, unit: int) -> int:
    """``amount`` in µs; a negative ``unit`` divides (nanoseconds, floored)."""
    return amount * unit if unit > 0 else amount // -unit


_Converter = Callable[[DialectRules, Schema, Any], Any]
_BY_NAME: dict[str, _Converter] = {
    DECIMAL: _decimal,
    DATE: _date,
    d.DBZ_DATE: _date,
    TIME: _time,
    d.DBZ_TIME: _time,
    d.DBZ_MICRO_TIME: _time,
    d.DBZ_NANO_TIME: _time,
    d.DBZ_TIMESTAMP: _local_timestamp,
    d.DBZ_MICRO_TIMESTAMP: _local_timestamp,
    d.DBZ_NANO_TIMESTAMP: _local_timestamp,
    TIMESTAMP: _zoned_timestamp,
    d.DBZ_ZONED_TIMESTAMP: _zoned_timestamp,
    d.DBZ_JSON: _json,
}
