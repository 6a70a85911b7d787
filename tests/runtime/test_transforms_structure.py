"""Flatten, SetSchemaMetadata and Cast (with Java's number and string semantics)."""

from __future__ import annotations

import datetime as dt
import decimal
import math

import pytest
from transform_helpers import configured, record

from omconnect.connect.schema import (
    BOOLEAN,
    BYTES,
    FLOAT32,
    FLOAT64,
    INT8,
    INT16,
    INT32,
    INT64,
    OPTIONAL_STRING,
    STRING,
    Schema,
    Struct,
    Type,
    array_schema,
    date_schema,
    decimal_schema,
    map_schema,
    struct_schema,
    time_schema,
    timestamp_schema,
)
from omconnect.errors import ConfigError
from omconnect.runtime.transforms import DataError
from omconnect.runtime.transforms.cast import CastKey, CastValue
from omconnect.runtime.transforms.structure import (
    FlattenKey,
    FlattenValue,
    SetSchemaMetadataKey,
    SetSchemaMetadataValue,
)
from omconnect.runtime.transforms.values import java_float_string, to_float32

UTC = dt.UTC

# Flatten


def test_flatten_schemaless_joins_nested_names() -> None:
    value = {"id": 1, "a": {"b": {"c": 2}, "d": [1, {"x": 1}]}, "none": None, "empty": {}}
    out = configured(FlattenValue).apply(record(value))
    assert out.value == {"id": 1, "a.b.c": 2, "a.d": [1, {"x": 1}], "none": None}


def test_flatten_custom_delimiter_and_key() -> None:
    out = configured(FlattenKey, delimiter="_").apply(record("v", key={"a": {"b": 1}}))
    assert (out.key, out.value) == ({"a_b": 1}, "v")


def test_flatten_schemaless_rejects_types_outside_connects_data_api() -> None:
    with pytest.raises(DataError, match="does not support"):
        configured(FlattenValue).apply(record({"at": dt.datetime(2024, 1, 1, tzinfo=UTC)}))


def test_flatten_passes_tombstones_through() -> None:
    tombstone = record(None)
    assert configured(FlattenValue).apply(tombstone) is tombstone


INNER = struct_schema([("x", INT32), ("y", Schema(Type.STRING, default="dflt"))], optional=True)
MIDDLE = struct_schema([("inner", INNER), ("tags", array_schema(STRING))])
OUTER = struct_schema(
    [("id", INT64), ("middle", MIDDLE), ("attrs", map_schema(STRING, INT32))], name="Outer"
)


def outer(inner: bool = True) -> Struct:
    middle = Struct(MIDDLE, {"tags": ["t"]})
    if inner:
        middle.put("inner", Struct(INNER, {"x": 1, "y": "why"}))
    return Struct(OUTER, {"id": 5, "middle": middle, "attrs": {"k": 1}})


def test_flatten_with_schema_flattens_structs_and_keeps_arrays_and_maps() -> None:
    transform = configured(FlattenValue)
    out = transform.apply(record(outer(), OUTER))
    schema = out.value_schema
    assert [f.name for f in schema.fields] == [
        "id",
        "middle.inner.x",
        "middle.inner.y",
        "middle.tags",
        "attrs",
    ]
    assert schema.name == "Outer"
    # below an optional struct every field becomes optional; defaults are kept
    assert schema.field("middle.inner.x").schema == INT32.as_optional()
    assert schema.field("middle.inner.y").schema == Schema(Type.STRING, True, "dflt")
    assert schema.field("middle.tags").schema == array_schema(STRING)
    assert schema.field("attrs").schema == map_schema(STRING, INT32)
    assert out.value.as_dict() == {
        "id": 5,
        "middle.inner.x": 1,
        "middle.inner.y": "why",
        "middle.tags": ["t"],
        "attrs": {"k": 1},
    }
    assert transform.apply(record(outer(), OUTER)).value_schema is schema


def test_flatten_with_schema_a_null_nested_struct_leaves_its_fields_null() -> None:
    out = configured(FlattenValue).apply(record(outer(inner=False), OUTER))
    assert out.value.get("middle.inner.x") is None
    assert out.value.get("middle.inner.y") == "dflt"


def test_flatten_takes_defaults_from_the_parent_default() -> None:
    point = struct_schema([("x", INT32), ("y", INT32)])
    default_point = Struct(point, {"x": 1, "y": 2})
    schema = struct_schema([("p", Schema(Type.STRUCT, default=default_point, fields=point.fields))])
    flat = configured(FlattenValue).apply(record(Struct(schema, {}), schema)).value_schema
    assert flat.field("p.x").schema.default == 1
    assert flat.field("p.y").schema.default == 2


# SetSchemaMetadata


def test_set_schema_metadata_renames_the_schema_and_rebuilds_the_struct() -> None:
    schema = struct_schema([("id", INT64)], name="Old")
    value = Struct(schema, {"id": 1})
    out = configured(
        SetSchemaMetadataValue, {"schema.name": "com.example.New", "schema.version": "3"}
    ).apply(record(value, schema))
    assert (out.value_schema.name, out.value_schema.version) == ("com.example.New", 3)
    assert out.value.schema is out.value_schema
    assert out.value.as_dict() == {"id": 1}


def test_set_schema_metadata_keeps_what_is_not_configured() -> None:
    schema = Schema(Type.STRING, name="Old", version=1)
    out = configured(SetSchemaMetadataKey, {"schema.version": 2}).apply(
        record("v", key="k", key_schema=schema)
    )
    assert (out.key_schema.name, out.key_schema.version, out.key) == ("Old", 2, "k")


def test_set_schema_metadata_needs_a_schema_and_a_setting() -> None:
    with pytest.raises(DataError, match="schema is required"):
        configured(SetSchemaMetadataValue, {"schema.name": "x"}).apply(record({"a": 1}))
    with pytest.raises(ConfigError, match="neither"):
        configured(SetSchemaMetadataValue, {})
    with pytest.raises(ConfigError) as caught:
        configured(SetSchemaMetadataValue, {"schema.version": "two"})
    assert caught.value.key == "schema.version"


# Cast: whole values, schemaless


@pytest.mark.parametrize(
    ("value", "spec", "expected"),
    [
        ("42", "int8", 42),
        (300, "int8", 44),
        (-129, "int8", 127),
        (70000, "int16", 4464),
        (2**31, "int32", -(2**31)),
        (1.9, "int32", 1),
        (-1.9, "int32", -1),
        (1e20, "int32", 2**31 - 1),  # saturates at int max
        (1e20, "int8", -1),  # saturates at int max, then keeps the low byte
        (1e20, "int64", 2**63 - 1),
        (float("nan"), "int64", 0),
        (True, "int32", 1),
        (False, "int64", 0),
        ("-7", "int64", -7),
        ("+7", "int16", 7),
        ("true", "boolean", True),
        ("TRUE", "boolean", True),
        ("yes", "boolean", False),
        (0, "boolean", False),
        (2, "boolean", True),
        (0.5, "boolean", False),
        (1, "float64", 1.0),
        ("2.5", "float64", 2.5),
        ("1e3", "float32", 1000.0),
        (True, "float32", 1.0),
        (0.1, "float32", to_float32(0.1)),
        (1.5, "string", "1.5"),
        (100.0, "string", "100.0"),
        (1e20, "string", "1.0E20"),
        (1.0e-5, "string", "1.0E-5"),
        (12345678.9, "string", "1.23456789E7"),
        (True, "string", "true"),
        (42, "string", "42"),
        (b"\x00\xff", "string", "AP8="),
        ("text", "string", "text"),
    ],
)
def test_cast_whole_schemaless_value(value: object, spec: str, expected: object) -> None:
    out = configured(CastValue, spec=spec).apply(record(value))
    assert out.value == expected
    assert type(out.value) is type(expected)
    assert out.value_schema is None


@pytest.mark.parametrize(
    ("value", "spec"),
    [
        ("abc", "int32"),
        ("1.5", "int32"),
        ("128", "int8"),
        ("", "int64"),
        ("1_000", "int64"),
        ("one", "float64"),
        (b"\x01", "int32"),
        ([1], "string"),
        ({"a": 1}, "int32"),
        (dt.date(2024, 1, 1), "int32"),
    ],
)
def test_cast_unsupported_or_unparsable_values_are_data_errors(value: object, spec: str) -> None:
    with pytest.raises(DataError):
        configured(CastValue, spec=spec).apply(record(value))


def test_cast_schemaless_fields_and_key() -> None:
    out = configured(CastKey, spec="a:int8, b:string, missing:int32").apply(
        record("v", key={"a": "5", "b": 2.0, "c": "keep"})
    )
    assert out.key == {"a": 5, "b": "2.0", "c": "keep", "missing": None}
    assert out.value == "v"


def test_cast_passes_tombstones_through() -> None:
    tombstone = record(None, OPTIONAL_STRING)
    assert configured(CastValue, spec="int32").apply(tombstone) is tombstone


# Cast: with a schema

FIELDS = struct_schema(
    [
        ("big", INT64),
        ("ratio", Schema(Type.FLOAT64, optional=True)),
        ("flag", Schema(Type.BOOLEAN, default=True)),
        ("label", STRING),
    ],
    name="Row",
)


def test_cast_fields_with_schema_rebuilds_the_schema() -> None:
    transform = configured(CastValue, spec="big:int16,ratio:string,flag:int8")
    value = Struct(FIELDS, {"big": 70000, "ratio": 0.25, "label": "x"})
    out = transform.apply(record(value, FIELDS))
    schema = out.value_schema
    assert schema.name == "Row"
    assert schema.field("big").schema == INT16
    assert schema.field("ratio").schema == OPTIONAL_STRING
    assert schema.field("flag").schema == Schema(Type.INT8, default=1)  # default cast too
    assert schema.field("label").schema == STRING
    assert out.value.as_dict() == {"big": 4464, "ratio": "0.25", "flag": 1, "label": "x"}
    assert transform.apply(record(value, FIELDS)).value_schema is schema


def test_cast_whole_value_with_schema() -> None:
    out = configured(CastValue, spec="int32").apply(
        record("17", Schema(Type.STRING, optional=True))
    )
    assert (out.value, out.value_schema) == (17, INT32.as_optional())


def test_cast_float32_to_string_uses_float_digits() -> None:
    schema = struct_schema([("f", FLOAT32)])
    out = configured(CastValue, spec="f:string").apply(
        record(Struct(schema, {"f": to_float32(1.1)}), schema)
    )
    assert out.value.get("f") == "1.1"


@pytest.mark.parametrize(
    ("schema", "value", "spec", "expected"),
    [
        (decimal_schema(2), decimal.Decimal("12.75"), "int32", 12),
        (decimal_schema(2), decimal.Decimal("12.75"), "float64", 12.75),
        (decimal_schema(2), decimal.Decimal("12.75"), "string", "12.75"),
        (timestamp_schema(), dt.datetime(1970, 1, 2, tzinfo=UTC), "int64", 86_400_000),
        (date_schema(), dt.date(1970, 1, 11), "int32", 10),
        (time_schema(), dt.time(0, 0, 1, 500_000), "int32", 1500),
        (
            timestamp_schema(),
            dt.datetime(2024, 3, 1, 12, 30, tzinfo=UTC),
            "string",
            "2024-03-01T12:30:00.000Z",
        ),
        (timestamp_schema(), dt.datetime(2024, 3, 1, tzinfo=UTC), "string", "2024-03-01"),
        (date_schema(), dt.date(2024, 3, 1), "string", "2024-03-01"),
        (time_schema(), dt.time(8, 5, 3), "string", "08:05:03.000Z"),
        (BOOLEAN, True, "float64", 1.0),
        (FLOAT64, 3.99, "int8", 3),
        (INT8, -1, "int64", -1),
    ],
)
def test_cast_logical_and_primitive_fields(
    schema: Schema, value: object, spec: str, expected: object
) -> None:
    row = struct_schema([("v", schema)])
    out = configured(CastValue, spec=f"v:{spec}").apply(record(Struct(row, {"v": value}), row))
    assert out.value.get("v") == expected
    assert out.value_schema.field("v").schema.type.value == spec


@pytest.mark.parametrize(
    ("schema", "value"),
    [
        (BYTES, b"x"),
        (array_schema(INT32), [1]),
        (struct_schema([("a", INT32)]), Struct(struct_schema([("a", INT32)]), {"a": 1})),
    ],
)
def test_cast_of_bytes_to_numbers_and_of_complex_types_is_a_data_error(
    schema: Schema, value: object
) -> None:
    row = struct_schema([("v", schema)])
    with pytest.raises(DataError):
        configured(CastValue, spec="v:int32").apply(record(Struct(row, {"v": value}), row))


@pytest.mark.parametrize(
    ("spec", "reason"),
    [
        ("", "at least one"),
        ("a:int8,int32", "only cast"),
        ("a:uuid", "supported types"),
        ("a:bytes", "supported types"),
        ("a:b:c", "invalid cast mapping"),
    ],
)
def test_cast_spec_errors(spec: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configured(CastValue, spec=spec)
    assert caught.value.key == "spec"
    assert reason in caught.value.reason


def test_cast_type_names_are_case_insensitive() -> None:
    assert configured(CastValue, spec="INT8").apply(record("3")).value == 3


@pytest.mark.parametrize(
    ("value", "float32", "text"),
    [
        (0.0, False, "0.0"),
        (-0.0, False, "-0.0"),
        (math.inf, False, "Infinity"),
        (-math.inf, False, "-Infinity"),
        (math.nan, False, "NaN"),
        (0.001, False, "0.001"),
        (0.0001, False, "1.0E-4"),
        (9999999.0, False, "9999999.0"),
        (10_000_000.0, False, "1.0E7"),
        (-2.5e-10, False, "-2.5E-10"),
        (to_float32(3.4028235e38), True, "3.4028235E38"),
        (to_float32(0.1), True, "0.1"),
    ],
)
def test_java_float_string(value: float, float32: bool, text: str) -> None:
    assert java_float_string(value, float32) == text


def test_cast_of_a_value_of_int_type_from_schema_uses_the_target_width() -> None:
    out = configured(CastValue, spec="int8").apply(record(200, INT32))
    assert (out.value, out.value_schema) == (-56, INT8)
    assert configured(CastValue, spec="int64").apply(record(200, INT32)).value_schema == INT64
