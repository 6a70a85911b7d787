"""TimestampConverter: convert a timestamp field (or the whole key/value) between
epoch numbers, formatted strings and Connect's Date, Time and Timestamp types.

The input kind comes from the schema (a Timestamp/Date/Time logical type, a string,
an int64) or, schemaless, from the Python type: `datetime.datetime` is a Timestamp,
`datetime.date` a Date, `datetime.time` a Time, an int is a Unix number, a str a
string in ``format``. Every conversion goes through epoch milliseconds, in UTC:
converting to Date keeps the day (midnight), to Time keeps the time of day.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, TypeVar

from pydantic import Field

from omconnect.connect.records import ConnectRecord
from omconnect.connect.schema import (
    DATE,
    INT64,
    OPTIONAL_INT64,
    OPTIONAL_STRING,
    STRING,
    TIME,
    TIMESTAMP,
    Schema,
    Struct,
    Type,
    date_schema,
    time_schema,
    timestamp_schema,
)
from omconnect.errors import ConfigError
from omconnect.runtime.transforms.base import DataError
from omconnect.runtime.transforms.dateformat import DateFormat
from omconnect.runtime.transforms.util import (
    PartTransformation,
    ReplaceNullConfig,
    SchemaCache,
    copy_struct,
    field_value,
    key_and_value,
    rebuild_struct_schema,
    require_map,
    require_struct,
    type_name,
)
from omconnect.runtime.transforms.values import (
    DAY_MS,
    date_from_millis,
    datetime_from_millis,
    time_from_millis,
    to_millis,
)

R = TypeVar("R", bound=ConnectRecord)

TargetType = Literal["string", "unix", "Date", "Time", "Timestamp"]
Precision = Literal["seconds", "milliseconds", "microseconds", "nanoseconds"]
_UNIX_SCALE = {"seconds": 1000, "milliseconds": 1, "microseconds": 1000, "nanoseconds": 1_000_000}


class TimestampConverterConfig(ReplaceNullConfig):
    """Kafka's TimestampConverter keys."""

    target_type: TargetType = Field(
        alias="target.type",
        description="The desired timestamp representation: string, unix, Date, Time, or Timestamp.",
    )
    field: str = Field(
        "",
        description="The field containing the timestamp, or empty if the entire value is "
        "a timestamp.",
    )
    format: str = Field(
        "",
        description="A SimpleDateFormat-compatible format for the timestamp. Used to "
        "generate the output when type=string or used to parse the input if the input is "
        "a string.",
    )
    unix_precision: Precision = Field(
        "milliseconds",
        alias="unix.precision",
        description="The Unix precision: seconds, milliseconds, microseconds, or "
        "nanoseconds. Used for the output when type=unix and to read input numbers.",
    )


def _truncating_div(number: int, divisor: int) -> int:
    """Java's integer division (toward zero)."""
    quotient = abs(number) // divisor
    return quotient if number >= 0 else -quotient


class TimestampConverter(PartTransformation[TimestampConverterConfig]):
    """Convert a timestamp between representations (see the module docstring)."""

    config_model = TimestampConverterConfig

    def setup(self) -> None:
        """Compile ``format``; `ConfigError` when it is needed but missing or invalid."""
        self._format: DateFormat | None = None
        if self.config.format:
            try:
                self._format = DateFormat(self.config.format)
            except ValueError as exc:
                raise ConfigError(
                    "format", f"not a SimpleDateFormat-compatible pattern: {exc}"
                ) from None
        elif self.config.target_type == "string":
            raise ConfigError("format", "is required when target.type is string")
        self._cache = SchemaCache(self._updated_schema)

    def _target_schema(self, optional: bool) -> Schema:
        target = self.config.target_type
        if target == "string":
            return OPTIONAL_STRING if optional else STRING
        if target == "unix":
            return OPTIONAL_INT64 if optional else INT64
        builder = {"Date": date_schema, "Time": time_schema, "Timestamp": timestamp_schema}[target]
        return builder(optional)

    def _updated_schema(self, schema: Schema) -> Schema:
        if not self.config.field:
            return self._target_schema(schema.optional)
        return rebuild_struct_schema(
            schema,
            [
                (
                    f.name,
                    self._target_schema(f.schema.optional)
                    if f.name == self.config.field
                    else f.schema,
                )
                for f in schema.fields
            ],
        )

    def _kind_of_schema(self, schema: Schema) -> str:
        logical = {TIMESTAMP: "Timestamp", DATE: "Date", TIME: "Time"}
        if schema.name in logical:
            return logical[schema.name]
        if schema.type is Type.STRING:
            return "string"
        if schema.type is Type.INT64:
            return "unix"
        raise DataError(
            f"schema of type {schema.type.value} does not correspond to a known timestamp type"
        )

    def _to_millis(self, value: Any, kind: str) -> int:
        if kind == "string":
            if not isinstance(value, str):
                raise DataError(f"expected a string timestamp, found {type_name(value)}")
            if self._format is None:
                raise DataError("a format is required to parse string timestamps")
            try:
                return self._format.parse(value)
            except ValueError:
                raise DataError(
                    f"could not parse timestamp: value ({value}) does not match pattern "
                    f"({self.config.format})"
                ) from None
        if kind == "unix":
            if isinstance(value, bool) or not isinstance(value, int):
                raise DataError(f"expected a Unix timestamp (int), found {type_name(value)}")
            scale = _UNIX_SCALE[self.config.unix_precision]
            if self.config.unix_precision == "seconds":
                return value * scale
            return _truncating_div(value, scale)
        if not isinstance(value, dt.date | dt.time):
            raise DataError(f"expected a {kind} (date, time or datetime), found {type_name(value)}")
        return to_millis(value)

    def _from_millis(self, millis: int) -> Any:
        target = self.config.target_type
        try:
            if target == "string":
                if self._format is None:  # setup guarantees one; kept for the type checker
                    raise DataError("a format is required for string timestamps")
                return self._format.format(millis)
            if target == "unix":
                scale = _UNIX_SCALE[self.config.unix_precision]
                seconds = self.config.unix_precision == "seconds"
                return _truncating_div(millis, scale) if seconds else millis * scale
            if target == "Date":
                return date_from_millis(millis)
            if target == "Time":
                return time_from_millis(millis % DAY_MS)
            return datetime_from_millis(millis)
        except (OverflowError, ValueError) as exc:
            raise DataError(f"timestamp {millis} ms is out of range: {exc}") from None

    def convert(self, value: Any, kind: str | None) -> Any:
        """``value`` (of ``kind``, or inferred from its Python type when None) in the
        target representation; None stays None."""
        if value is None:
            return None
        return self._from_millis(self._to_millis(value, kind or _infer_kind(value)))

    def apply(self, record: R) -> R | None:
        """The record with the timestamp converted."""
        value = self.part.value(record)
        schema = self.part.schema(record)
        field = self.config.field
        if schema is None:
            if value is None or not field:
                return self.part.updated(record, None, self.convert(value, None))
            fields = require_map(value, "converting timestamp formats")
            return self.part.updated(
                record, None, {**fields, field: self.convert(fields.get(field), None)}
            )
        new_schema = self._cache.get(schema)
        if not field:
            return self.part.updated(
                record, new_schema, self.convert(value, self._kind_of_schema(schema))
            )
        if value is None:
            return self.part.updated(record, new_schema, None)
        struct = require_struct(value, "converting timestamp formats")
        return self.part.updated(record, new_schema, self._convert_field(struct, new_schema))

    def _convert_field(self, struct: Struct, new_schema: Schema) -> Struct:
        found = struct.schema.field(self.config.field)
        if found is None:
            return copy_struct(struct, new_schema, self.config.replace_null_with_default)
        original = field_value(struct, found.name, self.config.replace_null_with_default)
        converted = self.convert(original, self._kind_of_schema(found.schema))
        return copy_struct(
            struct,
            new_schema,
            self.config.replace_null_with_default,
            overrides={found.name: converted},
        )


def _infer_kind(value: Any) -> str:
    if isinstance(value, dt.datetime):
        return "Timestamp"
    if isinstance(value, dt.date):
        return "Date"
    if isinstance(value, dt.time):
        return "Time"
    if isinstance(value, int) and not isinstance(value, bool):
        return "unix"
    if isinstance(value, str):
        return "string"
    raise DataError(f"TimestampConverter does not support {type_name(value)} values as timestamps")


TimestampConverterKey, TimestampConverterValue = key_and_value(TimestampConverter)
