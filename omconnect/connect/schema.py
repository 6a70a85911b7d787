"""Schemas and structs, as in Kafka Connect's data API.

A `Schema` is immutable: a type, optionality, a default, and for logical types a
name (Kafka Connect's names, so converters interoperate: ``Decimal``, ``Date``,
``Time``, ``Timestamp``). Structs hold values by field name and are checked against
their schema. Python values per type:

=========  ==================================================================
INT8..64   int (range-checked)          FLOAT32/64  float
BOOLEAN    bool                         STRING      str
BYTES      bytes                        ARRAY       list
MAP        dict                         STRUCT      `Struct`
Decimal    decimal.Decimal (BYTES; parameter ``scale``, optional precision)
Date       datetime.date (INT32 days since the epoch)
Time       datetime.time (INT32 ms since midnight)
Timestamp  datetime.datetime, timezone-aware (INT64 ms since the epoch)
=========  ==================================================================

A schema is checked when built (an ARRAY needs its value schema, a MAP its key and
value schemas, a default must fit) and values are checked by `Schema.validate`;
both raise `SchemaError` naming the path of the bad part, e.g. ``items[2].price``.
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from dataclasses import field as dataclass_field
from enum import Enum
from typing import Any

from omconnect.errors import RecordError


class Type(Enum):
    """Schema types; the value is Kafka Connect's lower-case name."""

    INT8 = "int8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    FLOAT32 = "float32"
    FLOAT64 = "float64"
    BOOLEAN = "boolean"
    STRING = "string"
    BYTES = "bytes"
    ARRAY = "array"
    MAP = "map"
    STRUCT = "struct"

    @property
    def is_primitive(self) -> bool:
        """Not ARRAY, MAP or STRUCT."""
        return self not in (Type.ARRAY, Type.MAP, Type.STRUCT)


INT_RANGES = {
    Type.INT8: (-(2**7), 2**7 - 1),
    Type.INT16: (-(2**15), 2**15 - 1),
    Type.INT32: (-(2**31), 2**31 - 1),
    Type.INT64: (-(2**63), 2**63 - 1),
}

FLOAT32_MAX = 3.4028234663852886e38
_FLOAT_MAX = {Type.FLOAT32: FLOAT32_MAX, Type.FLOAT64: sys.float_info.max}

DECIMAL = "org.apache.kafka.connect.data.Decimal"
DATE = "org.apache.kafka.connect.data.Date"
TIME = "org.apache.kafka.connect.data.Time"
TIMESTAMP = "org.apache.kafka.connect.data.Timestamp"


class SchemaError(RecordError):
    """A value does not match its schema, or a schema is malformed."""


@dataclass(frozen=True, slots=True)
class Field:
    """One field of a struct schema."""

    name: str
    index: int
    schema: Schema


@dataclass(frozen=True, slots=True)
class Schema:
    """An immutable schema; build one with the helpers below. `SchemaError` if it is
    malformed (see the module docstring)."""

    type: Type
    optional: bool = False
    default: Any = None
    name: str | None = None
    version: int | None = None
    doc: str | None = None
    parameters: tuple[tuple[str, str], ...] = ()
    fields: tuple[Field, ...] = ()
    key_schema: Schema | None = None  # MAP
    value_schema: Schema | None = None  # MAP and ARRAY
    _by_name: dict[str, Field] = dataclass_field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        _check_schema(self)
        object.__setattr__(self, "_by_name", {f.name: f for f in self.fields})

    def field(self, name: str) -> Field | None:
        """The struct field called ``name``, or None."""
        return self._by_name.get(name)

    @property
    def params(self) -> dict[str, str]:
        """``parameters`` as a dict."""
        return dict(self.parameters)

    def as_optional(self) -> Schema:
        """The same schema, optional."""
        return replace(self, optional=True)

    def validate(self, value: Any) -> None:
        """Raise `SchemaError` (naming the path) unless ``value`` fits this schema."""
        validate_value(self, value, "")


def _check_schema(schema: Schema) -> None:
    t = schema.type
    if t is Type.ARRAY and schema.value_schema is None:
        raise SchemaError("an array schema needs a value schema")
    if t is Type.MAP and (schema.key_schema is None or schema.value_schema is None):
        raise SchemaError("a map schema needs a key schema and a value schema")
    if t is not Type.STRUCT and schema.fields:
        raise SchemaError(f"only a struct schema has fields, not {t.value}")
    if t not in (Type.ARRAY, Type.MAP) and schema.value_schema is not None:
        raise SchemaError(f"only array and map schemas have a value schema, not {t.value}")
    if t is not Type.MAP and schema.key_schema is not None:
        raise SchemaError(f"only a map schema has a key schema, not {t.value}")
    if schema.name == DECIMAL:
        scale = schema.params.get("scale", "")
        if t is not Type.BYTES or not scale.lstrip("-").isdigit():
            raise SchemaError("a Decimal schema is BYTES with an integer 'scale' parameter")
    if schema.default is not None:
        validate_value(replace(schema, default=None), schema.default, "<default>")


def _primitive(t: Type) -> Schema:
    return Schema(t)


INT8, INT16, INT32, INT64 = (_primitive(t) for t in (Type.INT8, Type.INT16, Type.INT32, Type.INT64))
FLOAT32, FLOAT64 = _primitive(Type.FLOAT32), _primitive(Type.FLOAT64)
BOOLEAN, STRING, BYTES = _primitive(Type.BOOLEAN), _primitive(Type.STRING), _primitive(Type.BYTES)
OPTIONAL_INT32, OPTIONAL_INT64 = INT32.as_optional(), INT64.as_optional()
OPTIONAL_STRING, OPTIONAL_BYTES = STRING.as_optional(), BYTES.as_optional()
OPTIONAL_FLOAT64, OPTIONAL_BOOLEAN = FLOAT64.as_optional(), BOOLEAN.as_optional()


def decimal_schema(scale: int, precision: int | None = None, optional: bool = False) -> Schema:
    """Kafka Connect's Decimal logical type (values are `decimal.Decimal`)."""
    params = [("scale", str(scale))]
    if precision is not None:
        params.append(("connect.decimal.precision", str(precision)))
    return Schema(Type.BYTES, optional, name=DECIMAL, version=1, parameters=tuple(params))


def date_schema(optional: bool = False) -> Schema:
    """Kafka Connect's Date logical type (values are `datetime.date`)."""
    return Schema(Type.INT32, optional, name=DATE, version=1)


def time_schema(optional: bool = False) -> Schema:
    """Kafka Connect's Time logical type (values are `datetime.time`)."""
    return Schema(Type.INT32, optional, name=TIME, version=1)


def timestamp_schema(optional: bool = False) -> Schema:
    """Kafka Connect's Timestamp logical type (values are aware UTC `datetime`)."""
    return Schema(Type.INT64, optional, name=TIMESTAMP, version=1)


def array_schema(values: Schema, optional: bool = False) -> Schema:
    """An ARRAY of ``values``."""
    return Schema(Type.ARRAY, optional, value_schema=values)


def map_schema(keys: Schema, values: Schema, optional: bool = False) -> Schema:
    """A MAP from ``keys`` to ``values``."""
    return Schema(Type.MAP, optional, key_schema=keys, value_schema=values)


def struct_schema(
    fields: Iterable[tuple[str, Schema]] | Mapping[str, Schema],
    name: str | None = None,
    optional: bool = False,
    doc: str | None = None,
) -> Schema:
    """A STRUCT with ``fields`` in order; `SchemaError` on a duplicate name."""
    items = list(fields.items() if isinstance(fields, Mapping) else fields)
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        raise SchemaError(f"duplicate field names in struct {name or ''}: {names}")
    built = tuple(Field(n, i, s) for i, (n, s) in enumerate(items))
    return Schema(Type.STRUCT, optional, name=name, doc=doc, fields=built)


class Struct:
    """Values of a STRUCT schema, by field name. ``put`` checks each value."""

    __slots__ = ("_values", "schema")

    def __init__(self, schema: Schema, values: Mapping[str, Any] | None = None) -> None:
        if schema.type is not Type.STRUCT:
            raise SchemaError(f"a Struct needs a STRUCT schema, not {schema.type.value}")
        self.schema = schema
        self._values: dict[str, Any] = {}
        for name, value in (values or {}).items():
            self.put(name, value)

    @classmethod
    def of_checked(cls, schema: Schema, values: dict[str, Any]) -> Struct:
        """A Struct of ``values`` that the caller has already checked field by field
        against ``schema`` (a converter that built each value from its field schema),
        so they are not checked again. ``values`` is taken over, not copied."""
        struct = cls.__new__(cls)
        struct.schema = schema
        struct._values = values
        return struct

    def put(self, name: str, value: Any) -> Struct:
        """Set a field (checked against its schema); returns self for chaining."""
        f = self.schema.field(name)
        if f is None:
            raise SchemaError(f"{name!r} is not a field of struct {self.schema.name or ''}")
        validate_value(f.schema, value, name)
        self._values[name] = value
        return self

    def get(self, name: str) -> Any:
        """A field's value, or its schema default when unset or None."""
        f = self.schema.field(name)
        if f is None:
            raise SchemaError(f"{name!r} is not a field of struct {self.schema.name or ''}")
        value = self._values.get(name)
        return f.schema.default if value is None else value

    def validate(self) -> None:
        """Raise `SchemaError` if a required field without a default is unset."""
        validate_value(self.schema, self, "")

    def as_dict(self) -> dict[str, Any]:
        """Field name → value (nested structs as dicts), in schema order."""
        return {f.name: _plain(self.get(f.name)) for f in self.schema.fields}

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Struct)
            and self.schema == other.schema
            and self.as_dict() == other.as_dict()
        )

    def __hash__(self) -> int:
        return hash(self.schema)

    def __repr__(self) -> str:
        return f"Struct({self.as_dict()!r})"


def _plain(value: Any) -> Any:
    if isinstance(value, Struct):
        return value.as_dict()
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


_EXACT = decimal.Context(prec=decimal.MAX_PREC, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)

_LOGICAL_TYPES: dict[str, tuple[type, ...]] = {
    DECIMAL: (decimal.Decimal,),
    DATE: (dt.date,),
    TIME: (dt.time,),
    TIMESTAMP: (dt.datetime,),
}
_PRIMITIVE_TYPES: dict[Type, tuple[type, ...]] = {
    Type.FLOAT32: (float, int),
    Type.FLOAT64: (float, int),
    Type.BOOLEAN: (bool,),
    Type.STRING: (str,),
    Type.BYTES: (bytes, bytearray),
}


def validate_value(schema: Schema, value: Any, path: str = "") -> None:
    """Raise `SchemaError` naming ``path`` unless ``value`` fits ``schema``."""
    where = f" at {path!r}" if path else ""
    if value is None:
        if schema.optional or schema.default is not None:
            return
        raise SchemaError(f"null value{where} for a required {schema.type.value} schema")
    logical = _LOGICAL_TYPES.get(schema.name or "")
    if logical is not None:
        _validate_logical(schema, value, logical, where)
        return
    t = schema.type
    if t in INT_RANGES:
        low, high = INT_RANGES[t]
        if isinstance(value, bool) or not isinstance(value, int):
            raise SchemaError(f"{t.value}{where} takes int, not {type(value).__name__}")
        if not low <= value <= high:
            raise SchemaError(f"{value}{where} is out of range for {t.value}")
    elif t in _PRIMITIVE_TYPES:
        if not isinstance(value, _PRIMITIVE_TYPES[t]) or (
            t is not Type.BOOLEAN and isinstance(value, bool)
        ):
            raise SchemaError(
                f"{t.value}{where} takes {_PRIMITIVE_TYPES[t][0].__name__}, "
                f"not {type(value).__name__}"
            )
        float_max = _FLOAT_MAX.get(t)
        if (
            float_max is not None
            and isinstance(value, int | float)
            and abs(value) > float_max
            and not (isinstance(value, float) and math.isinf(value))  # inf is a valid float
        ):
            raise SchemaError(f"{value}{where} is out of range for {t.value}")
    elif t is Type.ARRAY:
        if not isinstance(value, list | tuple):
            raise SchemaError(f"array{where} takes a list, not {type(value).__name__}")
        if schema.value_schema is not None:
            for i, item in enumerate(value):
                validate_value(schema.value_schema, item, f"{path}[{i}]")
    elif t is Type.MAP:
        if not isinstance(value, Mapping):
            raise SchemaError(f"map{where} takes a dict, not {type(value).__name__}")
        for k, v in value.items():
            if schema.key_schema is not None:
                validate_value(schema.key_schema, k, f"{path}.<key>" if path else "<key>")
            if schema.value_schema is not None:
                validate_value(schema.value_schema, v, f"{path}[{k!r}]")
    elif t is Type.STRUCT:
        if not isinstance(value, Struct):
            raise SchemaError(f"struct{where} takes a Struct, not {type(value).__name__}")
        if value.schema is not schema and value.schema != schema:
            raise SchemaError(f"struct{where} has a different schema")
        for f in schema.fields:
            validate_value(f.schema, value.get(f.name), f"{path}.{f.name}" if path else f.name)


def _validate_logical(schema: Schema, value: Any, types: tuple[type, ...], where: str) -> None:
    name = (schema.name or "").rpartition(".")[2]
    if schema.name == DATE and isinstance(value, dt.datetime):
        raise SchemaError(f"Date{where} takes a date, not a datetime")
    if not isinstance(value, types):
        raise SchemaError(f"{name}{where} takes {types[0].__name__}, not {type(value).__name__}")
    if isinstance(value, dt.datetime) and schema.name == TIMESTAMP and value.utcoffset() is None:
        raise SchemaError(f"Timestamp{where} takes a timezone-aware datetime, not a naive one")
    if isinstance(value, decimal.Decimal) and schema.name == DECIMAL:
        _validate_decimal(schema, value, where)


def _validate_decimal(schema: Schema, value: decimal.Decimal, where: str) -> None:
    if not value.is_finite():
        raise SchemaError(f"Decimal{where} must be finite, not {value}")
    params = schema.params
    scale = int(params["scale"])
    _, digits, exponent = value.as_tuple()
    significant = "".join(map(str, digits)).rstrip("0")
    places = -(int(exponent) + len(digits) - len(significant)) if significant else 0
    if places > scale:
        raise SchemaError(f"{value}{where} has more than {scale} decimal places (the scale)")
    precision = params.get("connect.decimal.precision")
    if precision is not None:
        unscaled = abs(int(value.scaleb(scale, _EXACT)))
        if len(str(unscaled)) > int(precision):
            raise SchemaError(f"{value}{where} has more than {precision} digits (the precision)")
