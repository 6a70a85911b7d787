"""Connect values ↔ Avro datums (what fastavro writes and reads), schema-driven.

A datum is what `fastavro.schemaless_writer` takes for the Avro schema that
`avro_schema.to_avro_schema` makes of the Connect schema: structs as dicts,
maps with STRING keys as dicts and other maps as lists of ``{"key", "value"}``
records (as Confluent does), logical types in their wire form (Decimal as
unscaled bytes, Date as int days, Time as int ms, Timestamp as int ms).

Reading accepts what fastavro returns for either form of a logical type (it turns
``logicalType`` values into `decimal.Decimal`, `datetime.date` ...) and, for
defaults taken from an Avro schema's JSON, bytes written as ISO-8859-1 text.
Every failure is a `ConversionError` naming the place in the value.
"""

from __future__ import annotations

import datetime as dt
import decimal
from collections.abc import Mapping
from typing import Any

from omconnect.connect.schema import (
    DATE,
    DECIMAL,
    INT_RANGES,
    TIME,
    TIMESTAMP,
    Schema,
    SchemaError,
    Struct,
    Type,
)
from omconnect.runtime.converters import logical
from omconnect.runtime.converters.base import ConversionError, same_struct_schema


def _fail(path: str, reason: str) -> ConversionError:
    return ConversionError(f"{reason} {f'at {path!r}' if path else 'at the top level'}")


def _child(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def string_keyed(schema: Schema) -> bool:
    """Whether a MAP schema is an Avro map (required STRING keys) rather than an
    array of key/value records."""
    keys = schema.key_schema
    return keys is not None and keys.type is Type.STRING and not keys.optional


def to_avro_datum(schema: Schema, value: Any, path: str = "") -> Any:
    """The Avro datum of Connect ``value`` under ``schema``."""
    if value is None:
        if schema.default is not None:
            return to_avro_datum(schema, schema.default, path)
        if schema.optional:
            return None
        raise _fail(path, f"null for a required {schema.type.value}")
    if schema.name in logical.LOGICAL_NAMES:
        try:
            return logical.to_wire(schema, value)
        except ValueError as exc:
            raise _fail(path, str(exc)) from None
    t = schema.type
    if t in INT_RANGES:
        return _checked_int(t, value, path)
    if t is Type.FLOAT32 or t is Type.FLOAT64:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise _fail(path, f"{t.value} takes float, not {type(value).__name__}")
        return float(value)
    if t is Type.BOOLEAN:
        if not isinstance(value, bool):
            raise _fail(path, f"boolean takes bool, not {type(value).__name__}")
        return value
    if t is Type.STRING:
        if not isinstance(value, str):
            raise _fail(path, f"string takes str, not {type(value).__name__}")
        return value
    if t is Type.BYTES:
        if not isinstance(value, bytes | bytearray | memoryview):
            raise _fail(path, f"bytes takes bytes, not {type(value).__name__}")
        return bytes(value)
    if t is Type.ARRAY:
        if not isinstance(value, list | tuple):
            raise _fail(path, f"array takes a list, not {type(value).__name__}")
        items = _part(schema.value_schema)
        return [to_avro_datum(items, v, f"{path}[{i}]") for i, v in enumerate(value)]
    if t is Type.MAP:
        return _map_to_avro(schema, value, path)
    if not isinstance(value, Struct):
        raise _fail(path, f"struct takes a Struct, not {type(value).__name__}")
    if not same_struct_schema(value.schema, schema):
        raise _fail(path, "the Struct's schema is not the record's schema")
    return {
        f.name: to_avro_datum(f.schema, value.get(f.name), _child(path, f.name))
        for f in schema.fields
    }


def _map_to_avro(schema: Schema, value: Any, path: str) -> Any:
    if not isinstance(value, Mapping):
        raise _fail(path, f"map takes a dict, not {type(value).__name__}")
    keys, values = _part(schema.key_schema), _part(schema.value_schema)
    if string_keyed(schema):
        return {
            _checked_str(k, path): to_avro_datum(values, v, f"{path}[{k!r}]")
            for k, v in value.items()
        }
    return [
        {
            "key": to_avro_datum(keys, k, f"{path}.<key>"),
            "value": to_avro_datum(values, v, f"{path}[{k!r}]"),
        }
        for k, v in value.items()
    ]


def _part(schema: Schema | None) -> Schema:
    if schema is None:  # unreachable: Schema checks this when built
        raise ConversionError("array or map schema without its element schema")
    return schema


def _checked_int(t: Type, value: Any, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(path, f"{t.value} takes int, not {type(value).__name__}")
    low, high = INT_RANGES[t]
    if not low <= value <= high:
        raise _fail(path, f"{value} is out of range for {t.value}")
    return value


def _checked_str(key: Any, path: str) -> str:
    if not isinstance(key, str):
        raise _fail(path, f"map key {key!r} is not a string")
    return key


def from_avro_datum(schema: Schema, datum: Any, path: str = "") -> Any:
    """The Connect value of Avro ``datum`` under ``schema``."""
    if datum is None:
        if schema.default is not None:
            return schema.default
        if schema.optional:
            return None
        raise _fail(path, f"null for a required {schema.type.value}")
    if schema.name in logical.LOGICAL_NAMES:
        return _logical_from_avro(schema, datum, path)
    t = schema.type
    if t in INT_RANGES:
        return _checked_int(t, datum, path)
    if t is Type.FLOAT32 or t is Type.FLOAT64:
        if isinstance(datum, bool) or not isinstance(datum, int | float):
            raise _fail(path, f"{t.value} needs a number, not {type(datum).__name__}")
        return float(datum)
    if t is Type.BOOLEAN or t is Type.STRING:
        expected = bool if t is Type.BOOLEAN else str
        if not isinstance(datum, expected):
            raise _fail(path, f"{t.value} needs {expected.__name__}, not {type(datum).__name__}")
        return datum
    if t is Type.BYTES:
        return _bytes(datum, path)
    if t is Type.ARRAY:
        if not isinstance(datum, list):
            raise _fail(path, f"array needs a list, not {type(datum).__name__}")
        items = _part(schema.value_schema)
        return [from_avro_datum(items, v, f"{path}[{i}]") for i, v in enumerate(datum)]
    if t is Type.MAP:
        return _map_from_avro(schema, datum, path)
    if not isinstance(datum, Mapping):
        raise _fail(path, f"struct needs a record, not {type(datum).__name__}")
    values = {
        f.name: from_avro_datum(f.schema, datum.get(f.name), _child(path, f.name))
        for f in schema.fields
    }
    try:
        return Struct(schema, values)
    except SchemaError as exc:
        raise _fail(path, str(exc)) from None


def _map_from_avro(schema: Schema, datum: Any, path: str) -> dict[Any, Any]:
    keys, values = _part(schema.key_schema), _part(schema.value_schema)
    if isinstance(datum, Mapping):
        return {
            from_avro_datum(keys, k, f"{path}.<key>"): from_avro_datum(values, v, f"{path}[{k!r}]")
            for k, v in datum.items()
        }
    if not isinstance(datum, list):
        raise _fail(path, f"map needs a map or a list of entries, not {type(datum).__name__}")
    out: dict[Any, Any] = {}
    for i, entry in enumerate(datum):
        if not isinstance(entry, Mapping):
            raise _fail(f"{path}[{i}]", "map entry is not a key/value record")
        key = from_avro_datum(keys, entry.get("key"), f"{path}.<key>")
        try:
            out[key] = from_avro_datum(values, entry.get("value"), f"{path}[{key!r}]")
        except TypeError:
            raise _fail(path, f"map key {key!r} is not hashable") from None
    return out


def _logical_from_avro(schema: Schema, datum: Any, path: str) -> Any:
    try:
        if schema.name == DECIMAL:
            scale = logical.decimal_scale(schema)
            if isinstance(datum, decimal.Decimal):
                return logical.scaled(logical.unscaled(datum, scale), scale)
            return logical.bytes_to_decimal(_bytes(datum, path), scale)
        if schema.name == DATE and type(datum) is dt.date:
            return datum
        if schema.name == TIME and isinstance(datum, dt.time):
            return datum
        if schema.name == TIMESTAMP and isinstance(datum, dt.datetime):
            return datum if datum.tzinfo is not None else datum.replace(tzinfo=dt.UTC)
        return logical.from_wire(schema, datum)
    except ValueError as exc:
        raise _fail(path, str(exc)) from None


def _bytes(datum: Any, path: str) -> bytes:
    if isinstance(datum, bytes):
        return datum
    if isinstance(datum, str):  # a default in an Avro schema: one char per byte
        try:
            return datum.encode("latin-1")
        except UnicodeEncodeError:
            raise _fail(path, "bytes default has characters above U+00FF") from None
    raise _fail(path, f"bytes needs bytes, not {type(datum).__name__}")


def datum_to_json(datum: Any) -> Any:
    """An Avro datum as the JSON of a schema default (bytes as ISO-8859-1 text)."""
    if isinstance(datum, bytes):
        return datum.decode("latin-1")
    if isinstance(datum, list):
        return [datum_to_json(v) for v in datum]
    if isinstance(datum, dict):
        return {k: datum_to_json(v) for k, v in datum.items()}
    return datum
