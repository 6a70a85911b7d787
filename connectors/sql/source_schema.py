"""Connect schemas for rows of the SQL source, and the values that fit them (pure).

A table's schema comes from its reflected columns (`table_row_mapping`); a custom
query's from the values of the rows read and the driver's column description
(`inferred_row_mapping`: every field optional). Column types map as in Confluent's
JDBC source:

==============================  ==========================================
BOOLEAN                         boolean
TINYINT, SMALLINT               int8, int16 (one size up when UNSIGNED)
INTEGER, MEDIUMINT              int32 (int64 when UNSIGNED, and on SQLite)
BIGINT                          int64 (Decimal, scale 0, when UNSIGNED)
REAL / FLOAT(p <= 24)           float32 (float64 on SQLite)
DOUBLE, FLOAT                   float64
NUMERIC/DECIMAL(p, s)           Decimal(scale s, precision p)
NUMERIC without a scale         string (the exact decimal text)
DATE, TIME                      Date, Time
TIMESTAMP, DATETIME             Timestamp (naive values are in db.timezone)
CHAR, VARCHAR, TEXT, ENUM       string
BINARY, VARBINARY, BLOB, BYTEA  bytes
UUID, JSON, anything else       string (JSON as JSON text)
==============================  ==========================================

A nullable column gives an optional field. The struct is named after the table.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import types as satypes

from omconnect.connect.schema import (
    BOOLEAN,
    BYTES,
    FLOAT32,
    FLOAT64,
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    Schema,
    Struct,
    date_schema,
    decimal_schema,
    struct_schema,
    time_schema,
    timestamp_schema,
)

Converter = Callable[[Any], Any]
"""Turns a driver's value (never None) into the value its field's schema takes."""


@dataclass(frozen=True)
class RowMapping:
    """The struct schema of a row and one converter per column, in column order."""

    schema: Schema
    converters: tuple[Converter, ...]

    def to_struct(self, row: Sequence[Any]) -> Struct:
        """The row as a `Struct`; `SchemaError` if a value does not fit."""
        values = {
            field.name: None if value is None else convert(value)
            for field, convert, value in zip(self.schema.fields, self.converters, row, strict=True)
        }
        return Struct(self.schema, values)


# --- tables: from reflected column types --------------------------------------------


def table_row_mapping(table: sa.Table, dialect_name: str, timezone: dt.tzinfo) -> RowMapping:
    """The mapping of rows of the reflected ``table`` (all its columns, in order)."""
    fields: list[tuple[str, Schema]] = []
    converters: list[Converter] = []
    for column in table.columns:
        schema, convert = column_schema(column.type, dialect_name, timezone)
        fields.append((column.name, schema.as_optional() if column.nullable else schema))
        converters.append(convert)
    return RowMapping(struct_schema(fields, name=table.name), tuple(converters))


def column_schema(
    type_: satypes.TypeEngine[Any], dialect_name: str, timezone: dt.tzinfo
) -> tuple[Schema, Converter]:
    """The (required) schema and converter of a column of SQL type ``type_``."""
    if isinstance(type_, satypes.Boolean):
        return BOOLEAN, bool
    if isinstance(type_, satypes.Integer):
        return _integer_schema(type_, dialect_name)
    if isinstance(type_, satypes.Float):
        return _float_schema(type_, dialect_name), float
    if isinstance(type_, satypes.Numeric):
        if type_.scale is None:
            return STRING, lambda value: str(to_decimal(value))
        return decimal_schema(type_.scale, type_.precision), _decimal_converter(type_.scale)
    if isinstance(type_, satypes.DateTime):
        return timestamp_schema(), lambda value: to_utc(value, timezone)
    if isinstance(type_, satypes.Date):
        return date_schema(), to_date
    if isinstance(type_, satypes.Time):
        return time_schema(), to_time
    if isinstance(type_, satypes._Binary):
        return BYTES, bytes
    if isinstance(type_, satypes.JSON):
        return STRING, lambda value: json.dumps(value, default=str)
    return STRING, to_text


def _integer_schema(type_: satypes.Integer, dialect_name: str) -> tuple[Schema, Converter]:
    unsigned = bool(getattr(type_, "unsigned", False))
    kind = type(type_).__name__.upper()
    if kind == "TINYINT":
        return (INT16 if unsigned else INT8), int
    if isinstance(type_, satypes.SmallInteger):
        return (INT32 if unsigned else INT16), int
    if isinstance(type_, satypes.BigInteger):
        if unsigned:
            return decimal_schema(0, 20), decimal.Decimal
        return INT64, int
    if unsigned or dialect_name == "sqlite":  # SQLite's INTEGER holds 64 bits
        return INT64, int
    return INT32, int


def _float_schema(type_: satypes.Float[Any], dialect_name: str) -> Schema:
    if dialect_name == "sqlite":  # SQLite's REAL is a double
        return FLOAT64
    precision = type_.precision
    if precision is not None:
        return FLOAT32 if precision <= 24 else FLOAT64
    return FLOAT32 if type(type_).__name__.upper() in ("REAL", "FLOAT") else FLOAT64


def _decimal_converter(scale: int) -> Converter:
    quantum = decimal.Decimal(1).scaleb(-scale)

    def convert(value: Any) -> decimal.Decimal:
        number = to_decimal(value)
        exponent = number.as_tuple().exponent
        if isinstance(exponent, int) and exponent < -scale:
            # SQLite does not enforce the declared scale: round to what the schema says.
            return number.quantize(quantum, rounding=decimal.ROUND_HALF_EVEN)
        return number

    return convert


# --- value converters ------------------------------------------------------------------


def to_decimal(value: Any) -> decimal.Decimal:
    """A numeric value as a Decimal (a float through its shortest text)."""
    if isinstance(value, decimal.Decimal):
        return value
    if isinstance(value, float):
        return decimal.Decimal(repr(value))
    return decimal.Decimal(value)


def to_utc(value: Any, timezone: dt.tzinfo) -> dt.datetime:
    """A timestamp value as an aware UTC datetime; a naive one is in ``timezone``."""
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    elif not isinstance(value, dt.datetime) and isinstance(value, dt.date):
        value = dt.datetime.combine(value, dt.time())
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone)
    return value.astimezone(dt.UTC)


def to_date(value: Any) -> dt.date:
    """A date value (a datetime's date, ISO text parsed)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, str):
        return dt.date.fromisoformat(value[:10])
    return value


def to_time(value: Any) -> dt.time:
    """A time-of-day value (MySQL drivers give a timedelta since midnight)."""
    if isinstance(value, dt.timedelta):
        return (dt.datetime.min + value).time()
    if isinstance(value, str):
        return dt.time.fromisoformat(value)
    return value


def to_text(value: Any) -> str:
    """Text of a value of a type without its own mapping (UUID, ENUM, SET, ...)."""
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", errors="replace")
    if isinstance(value, set | frozenset):
        return ",".join(sorted(map(str, value)))
    return str(value)


# --- custom queries: from the values read ------------------------------------------


def inferred_row_mapping(
    name: str | None,
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    scales: Sequence[int | None],
    timezone: dt.tzinfo,
) -> RowMapping:
    """The mapping of a custom query's ``rows`` with column names ``columns``: each
    field optional, typed by its first non-null value (string when all are null); a
    decimal column's scale is the driver's (``scales``) or else the most decimal places
    among its values."""
    fields: list[tuple[str, Schema]] = []
    converters: list[Converter] = []
    for index, column in enumerate(columns):
        values = [row[index] for row in rows if row[index] is not None]
        schema, convert = _value_schema(values, scales[index], timezone)
        fields.append((column, schema.as_optional()))
        converters.append(convert)
    return RowMapping(struct_schema(fields, name=name), tuple(converters))


def _value_schema(
    values: Sequence[Any], scale: int | None, timezone: dt.tzinfo
) -> tuple[Schema, Converter]:
    sample = values[0] if values else None
    if isinstance(sample, bool):
        return BOOLEAN, bool
    if isinstance(sample, int):
        return INT64, int
    if isinstance(sample, float):
        return FLOAT64, float
    if isinstance(sample, decimal.Decimal):
        places = scale if scale is not None and scale >= 0 else _most_places(values)
        return decimal_schema(places), _decimal_converter(places)
    if isinstance(sample, dt.datetime):
        return timestamp_schema(), lambda value: to_utc(value, timezone)
    if isinstance(sample, dt.date):
        return date_schema(), to_date
    if isinstance(sample, dt.time | dt.timedelta):
        return time_schema(), to_time
    if isinstance(sample, bytes | bytearray | memoryview):
        return BYTES, bytes
    if isinstance(sample, uuid.UUID):
        return STRING, str
    return STRING, to_text


def _most_places(values: Sequence[Any]) -> int:
    places = 0
    for value in values:
        exponent = to_decimal(value).as_tuple().exponent
        if isinstance(exponent, int):
            places = max(places, -exponent)
    return places


def driver_scales(description: Sequence[Sequence[Any]] | None, count: int) -> list[int | None]:
    """The scale of each column in a DB-API cursor ``description`` (None: unknown)."""
    if not description:
        return [None] * count
    scales: list[int | None] = []
    for entry in description:
        scale = entry[5] if len(entry) > 5 else None
        scales.append(scale if isinstance(scale, int) and 0 <= scale <= 1000 else None)
    return scales
