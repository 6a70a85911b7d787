"""Column schemas and value conversion: MySQL/MariaDB values → the change-event form
of docs/connectors/cdc-events.md ("Column types").

Values arrive in two raw forms, and both convert to the same result:

- **binlog** rows decoded by pymysql-replication (``binlog_row_metadata=FULL``): SET
  as a Python set, BIT as a string of '0'/'1', TIMESTAMP as a naive UTC datetime
  (the zero TIMESTAMP as 1970-01-01 00:00:00), zero or invalid DATE/DATETIME as
  None, YEAR 0000 as 1900, BINARY(n) without its trailing zero bytes (and an
  empty binary value as ``''``), an empty SET as None (``none_sources`` says "empty
  set": see `restore_empty_sets`), MySQL JSON as parsed Python objects (MariaDB
  JSON is text), FLOAT as the exact single-precision value;
- **snapshot** rows of a PyMySQL ``SELECT``: SET as comma-separated text, BIT as
  big-endian bytes, JSON as text, zero dates as text ``'0000-00-00...'``, DATETIME
  as text when the connection decodes with `snapshot_conversions` (parsed here, ~10x
  faster than PyMySQL's regular expression),
  TIMESTAMP in the session time zone (so the snapshot session must run
  `prepare_session` first: UTC), FLOAT rounded by the server to 6 significant digits.

FLOAT values of both forms are therefore emitted as the server shows them: rounded
to 6 significant digits (FLOAT(M,D): to D decimals). Zero dates are null, or the
epoch for a NOT NULL column (Debezium's choice), as is the zero TIMESTAMP.

`converter` compiles one function per table (a tuple of per-column steps, built
once): the hot path does one dict lookup and at most one call per column.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from typing import Any

import pymysql.converters
from pymysql.charset import charset_by_name
from pymysql.constants import FIELD_TYPE

from omconnect.connect.schema import DECIMAL, Schema, Type

from .filters import Filters
from .tables import Column, Table

BITS = "io.debezium.data.Bits"
ENUM = "io.debezium.data.Enum"
ENUM_SET = "io.debezium.data.EnumSet"
JSON = "io.debezium.data.Json"
DATE = "io.debezium.time.Date"
MICRO_TIME = "io.debezium.time.MicroTime"
MICRO_TIMESTAMP = "io.debezium.time.MicroTimestamp"
ZONED_TIMESTAMP = "io.debezium.time.ZonedTimestamp"
YEAR = "io.debezium.time.Year"

SIGNED_INTS = {"tinyint": Type.INT8, "smallint": Type.INT16, "mediumint": Type.INT32,
               "int": Type.INT32, "integer": Type.INT32, "bigint": Type.INT64}  # fmt: skip
UNSIGNED_INTS = {"tinyint": Type.INT16, "smallint": Type.INT32, "mediumint": Type.INT32,
                 "int": Type.INT64, "integer": Type.INT64}  # fmt: skip
STRING_TYPES = frozenset(
    {"char", "varchar", "tinytext", "text", "mediumtext", "longtext", "nchar", "nvarchar"}
)
BINARY_TYPES = frozenset({"binary", "varbinary", "tinyblob", "blob", "mediumblob", "longblob"})

_EPOCH = dt.datetime(1970, 1, 1)
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_ONE_US = dt.timedelta(microseconds=1)
_EMPTY_SET = "empty set"  # pymysqlreplication.constants.NONE_SOURCE.EMPTY_SET

Convert = Callable[[Any], Any]
RowConverter = Callable[[Mapping[str, Any]], dict[str, Any]]


def snapshot_conversions() -> dict[Any, Any]:
    """PyMySQL's ``conv`` for a snapshot connection: its defaults, but DATETIME read
    as text (`value_converter` parses it)."""
    conversions = dict(pymysql.converters.conversions)
    del conversions[FIELD_TYPE.DATETIME]
    return conversions


def prepare_session(connection: Any) -> None:
    """Make a PyMySQL session read TIMESTAMP columns in UTC, as snapshot rows must be
    (run it on the snapshot connection before its SELECTs)."""
    with connection.cursor() as cursor:
        cursor.execute("SET time_zone = '+00:00'")


def restore_empty_sets(
    values: MutableMapping[str, Any], none_sources: Mapping[str, str] | None
) -> MutableMapping[str, Any]:
    """Put ``''`` back for the SET columns pymysql-replication decoded as None because
    they were empty (``none_sources`` of the row: ``row["none_sources"]`` or
    ``row["before_none_sources"]``/``row["after_none_sources"]``). Changes ``values``
    in place and returns it. Without this, an empty nullable SET reads as null."""
    if none_sources:
        for name, why in none_sources.items():
            if why == _EMPTY_SET:
                values[name] = ""
    return values


# --- schemas -----------------------------------------------------------------------


def column_schema(column: Column) -> Schema:
    """The schema of ``column``'s values (docs/connectors/cdc-events.md), optional
    exactly when the column is nullable."""
    t, name, params = _schema_parts(column)
    version = 1 if name is not None else None
    return Schema(t, column.nullable, name=name, version=version, parameters=params)


def _schema_parts(column: Column) -> tuple[Type, str | None, tuple[tuple[str, str], ...]]:
    data_type = column.data_type
    if data_type == "bigint" and column.unsigned:
        return Type.BYTES, DECIMAL, (("scale", "0"),)
    ints = UNSIGNED_INTS if column.unsigned else SIGNED_INTS
    if data_type in ints:
        return ints[data_type], None, ()
    if data_type in ("decimal", "numeric", "dec", "fixed"):
        scale, precision = column.scale or 0, column.precision or 65
        return (
            Type.BYTES,
            DECIMAL,
            (("scale", str(scale)), ("connect.decimal.precision", str(precision))),
        )
    simple = _SIMPLE_SCHEMAS.get(data_type)
    if simple is not None:
        return simple[0], simple[1], ()
    if data_type == "bit":
        if (column.length or 1) == 1:
            return Type.BOOLEAN, None, ()
        return Type.BYTES, BITS, (("length", str(column.length)),)
    if data_type in ("enum", "set"):
        return Type.STRING, ENUM if data_type == "enum" else ENUM_SET, _allowed(column)
    if data_type in STRING_TYPES:
        return Type.STRING, None, ()
    return Type.BYTES, None, ()  # binary types, and types without a mapping (geometry)


_SIMPLE_SCHEMAS: dict[str, tuple[Type, str | None]] = {
    "float": (Type.FLOAT32, None),
    "double": (Type.FLOAT64, None),
    "real": (Type.FLOAT64, None),
    "date": (Type.INT32, DATE),
    "time": (Type.INT64, MICRO_TIME),
    "datetime": (Type.INT64, MICRO_TIMESTAMP),
    "timestamp": (Type.STRING, ZONED_TIMESTAMP),
    "year": (Type.INT32, YEAR),
    "json": (Type.STRING, JSON),
}


def _allowed(column: Column) -> tuple[tuple[str, str], ...]:
    return (("allowed", ",".join(column.enum_values)),)


# --- per-column conversion -----------------------------------------------------------


def value_converter(column: Column) -> Convert | None:
    """The function turning a non-null raw value of ``column`` (either form) into its
    event value; None when raw values are already in that form."""
    data_type = column.data_type
    if data_type == "bigint" and column.unsigned:
        return _to_decimal
    if data_type in SIGNED_INTS or data_type in ("double", "real"):
        return None
    if data_type in ("decimal", "numeric", "dec", "fixed"):
        return _to_decimal
    if data_type in STRING_TYPES:
        return _text(column.charset)
    if data_type in BINARY_TYPES:
        return _binary(column.length if data_type == "binary" else None)
    factory = _CONVERTER_FACTORIES.get(data_type)
    if factory is not None:
        return factory(column)
    return _binary(None)


def zero_value(column: Column) -> Any:
    """What a zero or invalid date/time value (or an empty SET decoded as None) becomes:
    null for a nullable column; for a NOT NULL one the epoch or ``''``."""
    if column.nullable:
        return None
    return _ZEROS.get(column.data_type)


_ZEROS: dict[str, Any] = {
    "date": 0,
    "datetime": 0,
    "timestamp": "1970-01-01T00:00:00Z",
    "set": "",
}


def _to_decimal(value: Any) -> decimal.Decimal:
    if type(value) is decimal.Decimal:
        return value
    return decimal.Decimal(value if isinstance(value, int) else str(value))


def _text(charset: str | None) -> Convert:
    info = charset_by_name(charset) if charset else None
    encoding = info.encoding if info is not None else "utf-8"

    def text(value: Any) -> str:
        if type(value) is str:
            return value
        if isinstance(value, bytes | bytearray):
            return bytes(value).decode(encoding, "replace")
        return str(value)

    return text


def _binary(length: int | None) -> Convert:
    def binary(value: Any) -> bytes:
        if type(value) is not bytes:
            if isinstance(value, str):
                value = value.encode("utf-8", "surrogateescape")
            else:
                value = bytes(value)
        if length is not None and len(value) < length:
            return value + b"\x00" * (length - len(value))  # binlog drops trailing zeros
        return value

    return binary


def _float(column: Column) -> Convert:
    # The server shows FLOAT with 6 significant digits (FLOAT(M,D): D decimals); the
    # binlog has the exact single-precision value. Round both the server's way.
    template = f"{{:.{column.scale}f}}" if column.scale is not None else "{:.6g}"
    return lambda value: float(template.format(value))


def _bit(column: Column) -> Convert:
    width = ((column.length or 1) + 7) // 8
    if width == 1 and (column.length or 1) == 1:
        return _bit1

    def bits(value: Any) -> bytes:
        if type(value) is str:  # binlog: '0'/'1' digits, most significant first
            return int(value, 2).to_bytes(width, "big")
        if isinstance(value, int):
            return value.to_bytes(width, "big")
        return bytes(value).rjust(width, b"\x00")

    return bits


def _bit1(value: Any) -> bool:
    if type(value) is str:
        return value == "1"
    if isinstance(value, bytes | bytearray):
        return any(value)
    return bool(value)


def _date(column: Column) -> Convert:
    zero = zero_value(column)

    def days(value: Any) -> int | None:
        if isinstance(value, dt.date):  # a datetime is a date too
            return value.toordinal() - _EPOCH_ORDINAL
        return zero  # '0000-00-00' and other invalid dates read as text

    return days


def _time(_column: Column) -> Convert:
    def micros(value: Any) -> int:
        if isinstance(value, dt.timedelta):
            return value // _ONE_US
        if isinstance(value, dt.time):
            return (
                (value.hour * 60 + value.minute) * 60 + value.second
            ) * 1_000_000 + value.microsecond
        raise ValueError(f"unexpected TIME value {value!r}")

    return micros


def _datetime(column: Column) -> Convert:
    zero = zero_value(column)
    parse = dt.datetime.fromisoformat

    def micros(value: Any) -> int | None:
        if type(value) is str:  # 'YYYY-MM-DD hh:mm:ss[.f]' (`snapshot_conversions`)
            try:
                return (parse(value) - _EPOCH) // _ONE_US
            except ValueError:
                return zero  # '0000-00-00 00:00:00', invalid dates
        if isinstance(value, dt.datetime):
            return (value.replace(tzinfo=None) - _EPOCH) // _ONE_US
        if isinstance(value, dt.date):
            return (value.toordinal() - _EPOCH_ORDINAL) * 86_400_000_000
        return zero  # '0000-00-00 00:00:00' read as text

    return micros


def _timestamp(column: Column) -> Convert:
    zero = zero_value(column)
    fsp = column.datetime_precision or 0

    def iso(value: Any) -> str | None:
        if not isinstance(value, dt.datetime):
            return zero  # '0000-00-00 00:00:00' read as text
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        if value == _EPOCH:  # the zero TIMESTAMP, as the binlog decodes it
            return zero
        text = value.isoformat(timespec="seconds")
        if fsp:
            text += "." + f"{value.microsecond:06d}"[:fsp]
        return text + "Z"

    return iso


def _year(_column: Column) -> Convert:
    # The binlog decodes YEAR 0000 as 1900 (stored byte 0 + 1900); 1900 is not a YEAR.
    return lambda value: 0 if value == 1900 else int(value)


def _enum(column: Column) -> Convert:
    members = column.enum_values

    def member(value: Any) -> str:
        if type(value) is str:
            return value
        if isinstance(value, int):  # an index (1-based; 0 is the error value '')
            return members[value - 1] if 0 < value <= len(members) else ""
        return bytes(value).decode("utf-8", "replace")

    return member


def _set(column: Column) -> Convert:
    members = column.enum_values

    def joined(value: Any) -> str:
        if type(value) is str:
            return value
        if isinstance(value, set | frozenset | list | tuple):
            return ",".join(m for m in members if m in value)
        return bytes(value).decode("utf-8", "replace")

    return joined


def _json(_column: Column) -> Convert:
    return json_text


def json_text(value: Any) -> str:
    """JSON text of a JSON column value: text as is, bytes decoded, a parsed document
    (pymysql-replication's MySQL JSON, with bytes keys and strings) serialised the
    way MySQL prints it (``", "`` and ``": "`` separators)."""
    if type(value) is str:
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return json.dumps(_plain_json(value), ensure_ascii=False, default=str)


def _plain_json(value: Any) -> Any:
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict):
        return {_plain_json(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain_json(v) for v in value]
    return value


_CONVERTER_FACTORIES: dict[str, Callable[[Column], Convert]] = {
    "float": _float,
    "bit": _bit,
    "date": _date,
    "time": _time,
    "datetime": _datetime,
    "timestamp": _timestamp,
    "year": _year,
    "enum": _enum,
    "set": _set,
    "json": _json,
}


# --- rows -----------------------------------------------------------------------------

Step = tuple[str, Convert | None, Any]


def column_step(table: Table, column: Column, filters: Filters) -> Step:
    """How one column converts: (name, converter or None, value for a raw None), with
    the filters' masks and truncations applied to string columns."""
    convert = value_converter(column)
    transform = None
    if column.data_type in STRING_TYPES:
        transform = filters.column_transform(table.database, table.name, column.name)
    if transform is not None:
        convert = _then(convert, transform)
    return column.name, convert, zero_value(column)


def _then(first: Convert | None, second: Callable[[str], str]) -> Convert:
    if first is None:
        return second
    return lambda value: second(first(value))


def value_columns(table: Table, filters: Filters) -> tuple[Column, ...]:
    """The columns of ``table`` emitted in its row values (``column.*.list``)."""
    return tuple(
        c for c in table.columns if filters.include_column(table.database, table.name, c.name)
    )


def converter(table: Table, filters: Filters, columns: Sequence[str] | None = None) -> RowConverter:
    """A function turning one raw row (column name → value, either raw form; a missing
    column reads as None) into the event values of ``table``: the columns the filters
    include, in table order, or exactly ``columns`` in that order (a key). Build it
    once per table and reuse it."""
    chosen: Iterable[Column] = (
        value_columns(table, filters)
        if columns is None
        else (table.column(name) for name in columns)
    )
    steps = tuple(column_step(table, c, filters) for c in chosen)

    def convert(row: Mapping[str, Any]) -> dict[str, Any]:
        get = row.get
        out: dict[str, Any] = {}
        for name, convert_value, if_none in steps:
            value = get(name)
            if value is None:
                out[name] = if_none
            elif convert_value is None:
                out[name] = value
            else:
                out[name] = convert_value(value)
        return out

    return convert


def positional_converter(
    table: Table, filters: Filters, names: Sequence[str]
) -> Callable[[Sequence[Any]], dict[str, Any]]:
    """Like `converter` (the included columns, in table order), for rows given as
    tuples whose values follow ``names`` (a SELECT's columns, e.g. a PyMySQL tuple
    cursor's): no per-row dict of the raw row. Build it once per table and SELECT."""
    index = {name: i for i, name in enumerate(names)}
    columns = value_columns(table, filters)
    if any(c.name not in index for c in columns):  # a column the SELECT lacks: None
        by_name = converter(table, filters)
        return lambda row: by_name(dict(zip(names, row, strict=True)))
    steps = tuple(
        (name, index[name], convert_value, if_none)
        for name, convert_value, if_none in (column_step(table, c, filters) for c in columns)
    )

    def convert(row: Sequence[Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, i, convert_value, if_none in steps:
            value = row[i]
            if value is None:
                out[name] = if_none
            elif convert_value is None:
                out[name] = value
            else:
                out[name] = convert_value(value)
        return out

    return convert
