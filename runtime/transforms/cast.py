"""Cast: change the type of fields, or of the whole key or value, with Java's results.

``spec`` is either one type (cast the whole key/value) or ``field:type`` pairs.
Targets: int8, int16, int32, int64, float32, float64, boolean, string. Sources: the
same plus bytes (to string only, as base64), and with a schema the logical types
Decimal, Date, Time and Timestamp (a Date casts to an integer as days since the epoch,
a Time as milliseconds since midnight, a Timestamp as epoch milliseconds; all three to
string as ISO-8601). Numbers narrow as in Java (``300`` to int8 is ``44``; ``1.9`` to
int32 is ``1``); strings parse as Java's ``Integer.parseInt``/``Double.parseDouble``;
a string casts to boolean true only when it is "true" in any case.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import Field

from omconnect.connect.records import ConnectRecord
from omconnect.connect.schema import DATE, DECIMAL, TIME, TIMESTAMP, Schema, Struct, Type
from omconnect.errors import ConfigError
from omconnect.runtime.transforms.base import DataError
from omconnect.runtime.transforms.util import (
    FieldsTransformation,
    NonEmptyList,
    ReplaceNullConfig,
    SchemaCache,
    copy_struct,
    field_value,
    key_and_value,
    rebuild_struct_schema,
    type_name,
)
from omconnect.runtime.transforms.values import (
    DAY_MS,
    INT_BITS,
    infer_type,
    iso_string,
    java_boolean,
    java_float_string,
    java_integral,
    parse_java_float,
    parse_java_int,
    to_float32,
    to_millis,
)

R = TypeVar("R", bound=ConnectRecord)

OUTPUT_TYPES = (*INT_BITS, Type.FLOAT32, Type.FLOAT64, Type.BOOLEAN, Type.STRING)
INPUT_TYPES = (*OUTPUT_TYPES, Type.BYTES)
_LOGICAL = (DATE, TIME, TIMESTAMP, DECIMAL)


class CastConfig(ReplaceNullConfig):
    """Kafka's Cast keys."""

    spec: NonEmptyList = Field(
        description="field1:type,field2:type to cast fields of maps or Structs, or a single "
        "type to cast the entire value. Types: int8, int16, int32, int64, float32, float64, "
        "boolean, string."
    )


def parse_spec(items: tuple[str, ...]) -> tuple[Type | None, dict[str, Type]]:
    """The whole-value target type, or the target type per field; `ConfigError` on
    ``spec`` for an unknown type or a whole-value cast mixed with field casts."""
    whole: Type | None = None
    fields: dict[str, Type] = {}
    for item in items:
        parts = item.split(":")
        if len(parts) > 2:
            raise ConfigError("spec", f"invalid cast mapping {item!r}: use field:type or type")
        name = parts[-1].strip().lower()
        target = next((t for t in OUTPUT_TYPES if t.value == name), None)
        if target is None:
            known = ", ".join(t.value for t in OUTPUT_TYPES)
            raise ConfigError(
                "spec", f"cannot cast to {parts[-1].strip()!r}; supported types are {known}"
            )
        if len(parts) == 1:
            whole = target
        else:
            fields[parts[0].strip()] = target
    if whole is not None and len(items) > 1:
        raise ConfigError("spec", "a cast of the entire value must be the only cast in the spec")
    return whole, fields


def _to_string(value: Any, schema: Schema | None) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return java_float_string(value, float32=schema is not None and schema.type is Type.FLOAT32)
    if isinstance(value, bytes | bytearray):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, dt.date | dt.time):
        return iso_string(value)
    return str(value)


def _to_number(value: Any, target: Type) -> Any:
    if target in INT_BITS:
        if isinstance(value, bool):
            return int(value)
        if isinstance(value, str):
            return parse_java_int(value, target)
        return java_integral(value, INT_BITS[target])
    if target in (Type.FLOAT32, Type.FLOAT64):
        float32 = target is Type.FLOAT32
        if isinstance(value, str):
            return parse_java_float(value, float32)
        number = float(value)
        return to_float32(number) if float32 else number
    if isinstance(value, str):
        return java_boolean(value)
    return value if isinstance(value, bool) else java_integral(value, 64) != 0


def cast_value(schema: Schema | None, value: Any, target: Type) -> Any:
    """``value`` (of ``schema``, or of its inferred type when schemaless) cast to
    ``target``; None stays None. `DataError` for unsupported or unparsable input."""
    if value is None:
        return None
    source = schema.type if schema is not None else infer_type(value)
    if source is None:
        raise DataError(
            f"cast was passed a value of type {type_name(value)}, "
            "which Connect's data API does not support"
        )
    if source not in INPUT_TYPES:
        known = ", ".join(t.value for t in INPUT_TYPES)
        raise DataError(
            f"cast does not support casting from {source.value}; supported types are {known}"
        )
    if target is Type.STRING:
        return _to_string(value, schema)
    if isinstance(value, bytes | bytearray):
        raise DataError(f"bytes can only be cast to string, not to {target.value}")
    if isinstance(value, dt.date | dt.time):
        millis = to_millis(value)
        value = millis // DAY_MS if schema is not None and schema.name == DATE else millis
    try:
        return _to_number(value, target)
    except (ValueError, decimal.InvalidOperation, OverflowError):
        raise DataError(
            f"value ({value}) was out of range for requested data type {target.value}"
        ) from None


class Cast(FieldsTransformation[CastConfig]):
    """Cast fields, or the entire key/value, to another primitive type. With a schema,
    cast fields get a plain schema of the target type (keeping optionality and a cast
    default). Schemaless, every listed field is set (null when absent). A null
    key/value passes unchanged."""

    config_model = CastConfig
    purpose = "cast types"

    def setup(self) -> None:
        """Parse ``spec`` and prepare the schema cache."""
        self._whole, self._casts = parse_spec(self.config.spec)
        self._cache = SchemaCache(self._updated_schema)

    def _target_schema(self, original: Schema, target: Type) -> Schema:
        default = (
            cast_value(original, original.default, target) if original.default is not None else None
        )
        return Schema(target, original.optional, default)

    def _updated_schema(self, schema: Schema) -> Schema:
        if self._whole is not None:
            target = self._target_schema(schema, self._whole)
            if schema.name in _LOGICAL:
                return target
            return Schema(
                target.type,
                target.optional,
                target.default,
                schema.name,
                schema.version,
                schema.doc,
                schema.parameters,
            )
        fields = [
            (
                f.name,
                self._target_schema(f.schema, self._casts[f.name])
                if f.name in self._casts
                else f.schema,
            )
            for f in schema.fields
        ]
        return rebuild_struct_schema(schema, fields)

    def apply(self, record: R) -> R | None:
        """The record with the casts applied."""
        value = self.part.value(record)
        if self._whole is None or value is None:
            return super().apply(record)
        schema = self.part.schema(record)
        new_schema = None if schema is None else self._cache.get(schema)
        return self.part.updated(record, new_schema, cast_value(schema, value, self._whole))

    def apply_schemaless(self, record: R, value: Mapping[str, Any]) -> R:
        """The record with the listed map fields cast (absent ones set to null)."""
        casts = {name: cast_value(None, value.get(name), t) for name, t in self._casts.items()}
        return self.part.updated(record, None, {**value, **casts})

    def apply_struct(self, record: R, value: Struct) -> R:
        """The record with the listed struct fields cast and its schema rebuilt."""
        new_schema = self._cache.get(value.schema)
        keep_default = self.config.replace_null_with_default
        overrides = {
            f.name: cast_value(
                f.schema, field_value(value, f.name, keep_default), self._casts[f.name]
            )
            for f in value.schema.fields
            if f.name in self._casts
        }
        cast = copy_struct(value, new_schema, keep_default, overrides=overrides)
        return self.part.updated(record, new_schema, cast)


CastKey, CastValue = key_and_value(Cast)
