"""Value conversions with Kafka Connect's (that is, Java's) results.

Cast, MaskField and InsertHeader must give the values Kafka gives: Java's narrowing
of numbers (``(byte) 300 == 44``), ``Integer.parseInt`` and ``Double.parseDouble``
syntax, ``Double.toString`` spelling (``1.0E10``), ISO-8601 strings for dates and
``Values.parseString`` type inference for literals. Dates, times and timestamps are
`datetime.date`, `datetime.time` and UTC `datetime.datetime` values, as in
`omconnect.connect.schema`; "millis" below is milliseconds since the epoch (for a
time: since midnight), Java's ``java.util.Date`` representation.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import re
import struct
from typing import Any

from omconnect.connect.schema import (
    BOOLEAN,
    FLOAT32,
    FLOAT64,
    INT8,
    INT16,
    INT32,
    INT64,
    INT_RANGES,
    STRING,
    Schema,
    Struct,
    Type,
    date_schema,
    decimal_schema,
    time_schema,
    timestamp_schema,
)

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
DAY_MS = 86_400_000
INT_BITS = {Type.INT8: 8, Type.INT16: 16, Type.INT32: 32, Type.INT64: 64}

_JAVA_INT = re.compile(r"[+-]?[0-9]+")
_JAVA_FLOAT = re.compile(r"[+-]?(NaN|Infinity|([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?[fFdD]?)")
_BIG_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)([eE][+-]?[0-9]+)?")


def infer_type(value: Any) -> Type | None:
    """The schema type of a schemaless value (Kafka's ``ConnectSchema.schemaType``);
    None for values Connect's data API has no type for (dates, decimals...)."""
    if isinstance(value, bool):
        return Type.BOOLEAN
    if isinstance(value, int):
        return Type.INT64
    if isinstance(value, float):
        return Type.FLOAT64
    if isinstance(value, str):
        return Type.STRING
    if isinstance(value, bytes | bytearray):
        return Type.BYTES
    if isinstance(value, list | tuple):
        return Type.ARRAY
    if isinstance(value, dict):
        return Type.MAP
    if isinstance(value, Struct):
        return Type.STRUCT
    return None


def wrap_int(value: int, bits: int) -> int:
    """The low ``bits`` bits of ``value`` as a signed integer (Java's narrowing)."""
    low = value & ((1 << bits) - 1)
    return low - (1 << bits) if low >> (bits - 1) else low


def java_integral(value: int | float | decimal.Decimal, bits: int) -> int:
    """``value`` narrowed to a ``bits``-bit integer as Java's ``Number.xxxValue()``:
    floats truncate toward zero and saturate at int (or long) range, then wrap."""
    if isinstance(value, float):
        if math.isnan(value):
            return 0
        low, high = INT_RANGES[Type.INT64 if bits == 64 else Type.INT32]
        whole = high if value >= high else low if value <= low else int(value)
        return wrap_int(whole, bits)
    return wrap_int(int(value), bits)


def to_float32(value: float) -> float:
    """``value`` rounded to the nearest 32-bit float (infinite past its range)."""
    try:
        return float(struct.unpack("f", struct.pack("f", value))[0])
    except OverflowError:
        return math.copysign(math.inf, value)


def parse_java_int(text: str, schema_type: Type) -> int:
    """``Byte/Short/Integer/Long.parseXxx``: ValueError unless ``text`` is an integer
    in range of ``schema_type``."""
    if not _JAVA_INT.fullmatch(text):
        raise ValueError(f"{text!r} is not an integer")
    number = int(text)
    low, high = INT_RANGES[schema_type]
    if not low <= number <= high:
        raise ValueError(f"{text} is out of range for {schema_type.value}")
    return number


def parse_java_float(text: str, float32: bool = False) -> float:
    """``Float/Double.parseXxx``: ValueError unless ``text`` is a Java float literal."""
    stripped = text.strip()
    if not _JAVA_FLOAT.fullmatch(stripped):
        raise ValueError(f"{text!r} is not a number")
    number = float(stripped.rstrip("fFdD").replace("Infinity", "inf"))
    return to_float32(number) if float32 else number


def java_boolean(text: str) -> bool:
    """``Boolean.parseBoolean``: true for "true" in any case, false for anything else."""
    return text.lower() == "true"


def java_float_string(value: float, float32: bool = False) -> str:
    """``Double.toString`` (``Float.toString`` when ``float32``): the shortest digits
    that read back, plain from 10^-3 to 10^7, else ``d.dddEn``."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    if value == 0:
        return "-0.0" if math.copysign(1.0, value) < 0 else "0.0"
    shortest = repr(value)
    if float32:
        for precision in range(1, 10):
            shortest = f"{value:.{precision}g}"
            if to_float32(float(shortest)) == value:
                break
    number = decimal.Decimal(shortest).normalize()
    sign = "-" if number < 0 else ""
    if 1e-3 <= abs(value) < 1e7:
        plain = format(abs(number), "f")
        return sign + (plain if "." in plain else plain + ".0")
    digits = "".join(str(d) for d in number.as_tuple().digits)
    exponent = number.adjusted()
    return f"{sign}{digits[0]}.{digits[1:] or '0'}E{exponent}"


def to_millis(value: dt.date | dt.time) -> int:
    """Milliseconds of a Timestamp (since the epoch; naive means UTC), a Date (its
    midnight) or a Time (since midnight)."""
    if isinstance(value, dt.datetime):
        aware = value if value.tzinfo is not None else value.replace(tzinfo=dt.UTC)
        delta = aware - EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000
    if isinstance(value, dt.date):
        return (value - EPOCH.date()).days * DAY_MS
    return ((value.hour * 60 + value.minute) * 60 + value.second) * 1000 + value.microsecond // 1000


def datetime_from_millis(millis: int) -> dt.datetime:
    """The UTC datetime ``millis`` after the epoch."""
    return EPOCH + dt.timedelta(milliseconds=millis)


def date_from_millis(millis: int) -> dt.date:
    """The UTC calendar day holding ``millis``."""
    return datetime_from_millis(millis).date()


def time_from_millis(millis: int) -> dt.time:
    """The UTC time of day of ``millis`` (the day is dropped)."""
    return datetime_from_millis(millis).time()


def iso_string(value: dt.date | dt.time) -> str:
    """A date, time or timestamp as Kafka's ``Values.dateFormatFor`` writes it:
    ``yyyy-MM-dd`` at midnight, ``HH:mm:ss.SSS'Z'`` on the first day, the full
    ``yyyy-MM-dd'T'HH:mm:ss.SSS'Z'`` otherwise."""
    millis = to_millis(value)
    moment = datetime_from_millis(millis)
    clock = f"{moment:%H:%M:%S}.{moment.microsecond // 1000:03d}Z"
    if isinstance(value, dt.time) or 0 <= millis < DAY_MS:
        return clock
    if millis % DAY_MS == 0:
        return f"{moment:%Y-%m-%d}"
    return f"{moment:%Y-%m-%d}T{clock}"


def _parse_temporal(text: str) -> tuple[Schema, Any] | None:
    formats = {10: ("%Y-%m-%d", date_schema()), 24: ("%Y-%m-%dT%H:%M:%S.%fZ", timestamp_schema())}
    if len(text) == 13 and re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}Z", text):
        try:
            return time_schema(), dt.time.fromisoformat(text[:-1])
        except ValueError:
            return None
    if len(text) in formats:
        pattern, schema = formats[len(text)]
        try:
            moment = dt.datetime.strptime(text, pattern).replace(tzinfo=dt.UTC)
        except ValueError:
            return None
        return (schema, moment.date()) if len(text) == 10 else (schema, moment)
    return None


def _parse_number(text: str) -> tuple[Schema, Any] | None:
    if not _BIG_DECIMAL.fullmatch(text):
        return None
    number = decimal.Decimal(text)
    exponent = number.as_tuple().exponent
    scale = -exponent if isinstance(exponent, int) else 0
    magnitude = abs(number)
    exact = magnitude <= decimal.Decimal("1e19") and not (0 < magnitude < 1)
    if exact and number == number.to_integral_value():
        integral = int(number)
        for schema in (INT8, INT16, INT32, INT64):
            low, high = INT_RANGES[schema.type]
            if low <= integral <= high:
                return schema, integral
    if scale != 0 and not math.isinf(to_float32(float(number))):
        return FLOAT32, to_float32(float(number))
    if scale != 0 and not math.isinf(float(number)):
        return FLOAT64, float(number)
    return decimal_schema(scale), number


def parse_literal(text: str) -> tuple[Schema | None, Any]:
    """The schema and value Kafka's ``Values.parseString`` infers for a config literal:
    null, booleans, ISO dates/times/timestamps, the smallest integer type, float32 or
    float64, a Decimal for huge numbers, else the string itself. (Array and map
    literals are kept as strings.)"""
    token = text.strip()
    if not token:
        return STRING, text
    if token.lower() == "null":
        return None, None
    if token.lower() in ("true", "false"):
        return BOOLEAN, token.lower() == "true"
    if token[0].isdigit():
        temporal = _parse_temporal(token)
        if temporal is not None:
            return temporal
    if token[0].isdigit() or token[0] in "+-":
        number = _parse_number(token)
        if number is not None:
            return number
    return STRING, text
