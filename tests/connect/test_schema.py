"""Schemas and structs: every type, ranges, logical types, error paths, defaults."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from omconnect.connect.schema import (
    BOOLEAN,
    BYTES,
    FLOAT32,
    FLOAT64,
    INT8,
    INT16,
    INT32,
    INT64,
    OPTIONAL_INT32,
    OPTIONAL_STRING,
    STRING,
    Schema,
    SchemaError,
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
from omconnect.errors import RecordError

UTC = dt.UTC

VALID: list[tuple[Schema, Any]] = [
    (INT8, -128),
    (INT8, 127),
    (INT16, -(2**15)),
    (INT16, 2**15 - 1),
    (INT32, 2**31 - 1),
    (INT64, -(2**63)),
    (INT64, 2**63 - 1),
    (FLOAT32, 1.5),
    (FLOAT32, 3),
    (FLOAT32, float("inf")),
    (FLOAT64, 1e300),
    (BOOLEAN, False),
    (STRING, ""),
    (BYTES, b"\x00"),
    (BYTES, bytearray(b"ab")),
    (array_schema(INT32), [1, 2]),
    (array_schema(INT32), []),
    (map_schema(STRING, INT64), {"a": 1}),
    (decimal_schema(2), Decimal("1.23")),
    (decimal_schema(2), Decimal("1.5")),
    (decimal_schema(2), Decimal("1.500")),
    (decimal_schema(0), Decimal("1E+3")),
    (decimal_schema(2, precision=4), Decimal("12.34")),
    (date_schema(), dt.date(2024, 2, 29)),
    (time_schema(), dt.time(23, 59, 59, 999000)),
    (timestamp_schema(), dt.datetime(2024, 1, 1, tzinfo=UTC)),
    (OPTIONAL_STRING, None),
    (Schema(Type.INT32, default=7), None),
]

INVALID: list[tuple[Schema, Any, str]] = [
    (INT8, 128, "out of range for int8"),
    (INT8, -129, "out of range for int8"),
    (INT16, 2**15, "out of range for int16"),
    (INT32, -(2**31) - 1, "out of range for int32"),
    (INT64, 2**63, "out of range for int64"),
    (INT32, True, "takes int, not bool"),
    (INT32, 1.0, "takes int, not float"),
    (INT32, "1", "takes int, not str"),
    (FLOAT32, 1e39, "out of range for float32"),
    (FLOAT64, 10**400, "out of range for float64"),
    (FLOAT64, "1.0", "takes float, not str"),
    (FLOAT64, False, "takes float, not bool"),
    (BOOLEAN, 1, "takes bool, not int"),
    (STRING, b"x", "takes str, not bytes"),
    (BYTES, "x", "takes bytes, not str"),
    (INT32, None, "null value for a required int32"),
    (array_schema(INT32), iter([1]), "takes a list"),
    (map_schema(STRING, INT32), [("a", 1)], "takes a dict"),
    (decimal_schema(2), 1.23, "takes Decimal, not float"),
    (decimal_schema(2), Decimal("1.234"), "more than 2 decimal places"),
    (decimal_schema(2), Decimal("NaN"), "must be finite"),
    (decimal_schema(2), Decimal("-Infinity"), "must be finite"),
    (decimal_schema(2, precision=4), Decimal("123.4"), "more than 4 digits"),
    (date_schema(), dt.datetime(2024, 1, 1), "takes a date, not a datetime"),
    (date_schema(), "2024-01-01", "takes date, not str"),
    (time_schema(), 1000, "takes time, not int"),
    (timestamp_schema(), dt.datetime(2024, 1, 1), "timezone-aware"),
    (timestamp_schema(), 1_700_000_000_000, "takes datetime, not int"),
]


@pytest.mark.parametrize(("schema", "value"), VALID)
def test_valid_values_pass(schema: Schema, value: Any) -> None:
    schema.validate(value)


@pytest.mark.parametrize(("schema", "value", "message"), INVALID)
def test_invalid_values_raise_naming_the_reason(schema: Schema, value: Any, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        schema.validate(value)


def test_schema_error_is_a_record_error() -> None:
    # The runtime sends one bad record to the dead-letter queue rather than failing.
    assert issubclass(SchemaError, RecordError)


def test_optional_logical_types_accept_none() -> None:
    for schema in (decimal_schema(1, optional=True), date_schema(True), timestamp_schema(True)):
        schema.validate(None)
    with pytest.raises(SchemaError):
        decimal_schema(1).validate(None)


ADDRESS = struct_schema([("city", STRING), ("zip", OPTIONAL_STRING)], name="Address")
ITEM = struct_schema([("sku", STRING), ("qty", INT16)], name="Item")
ORDER = struct_schema(
    [
        ("id", INT64),
        ("items", array_schema(ITEM)),
        ("tags", map_schema(STRING, array_schema(INT8))),
        ("address", ADDRESS),
    ],
    name="Order",
)


def _order(**changes: Any) -> Struct:
    values: dict[str, Any] = {
        "id": 1,
        "items": [Struct(ITEM, {"sku": "a", "qty": 1})],
        "tags": {"x": [1]},
        "address": Struct(ADDRESS, {"city": "Oslo"}),
    }
    values.update(changes)
    return Struct(ORDER, values)


@pytest.mark.parametrize(
    ("values", "path"),
    [
        ({"tags": {"x": [1, 300]}}, "tags['x'][1]"),
        ({"tags": {7: [1]}}, "tags.<key>"),
        ({"items": ["not a struct"]}, "items[0]"),
    ],
)
def test_errors_in_nested_values_name_the_path(values: dict[str, Any], path: str) -> None:
    with pytest.raises(SchemaError) as caught:
        _order(**values)
    assert f"at {path!r}" in str(caught.value)


def test_error_path_through_nested_struct_fields() -> None:
    address = Struct(ADDRESS)  # city unset: a nested struct is checked whole on put
    with pytest.raises(SchemaError, match=r"at 'address\.city'"):
        _order(address=address)
    incomplete_item = Struct(ITEM)
    incomplete_item._values["sku"] = "b"  # bypass put's check to reach validate's
    with pytest.raises(SchemaError, match=r"at 'items\[1\]\.qty'"):
        _order().put("items", [Struct(ITEM, {"sku": "a", "qty": 1}), incomplete_item])
    with pytest.raises(SchemaError, match=r"at '\[0\]\.qty'"):
        array_schema(ITEM).validate([incomplete_item])


def test_map_key_error_at_top_level_names_the_key_slot() -> None:
    with pytest.raises(SchemaError, match="at '<key>'"):
        map_schema(INT8, STRING).validate({"a": "b"})


def test_struct_put_checks_field_and_type() -> None:
    s = Struct(ADDRESS)
    with pytest.raises(SchemaError, match="'country' is not a field"):
        s.put("country", "NO")
    with pytest.raises(SchemaError, match="at 'city'"):
        s.put("city", 5)
    assert s.put("city", "Oslo").get("city") == "Oslo"
    with pytest.raises(SchemaError, match="'nope' is not a field"):
        s.get("nope")


def test_struct_with_another_schema_is_rejected() -> None:
    other = struct_schema([("city", STRING)], name="Other")
    with pytest.raises(SchemaError, match="different schema"):
        _order(address=Struct(other, {"city": "x"}))


def test_struct_needs_a_struct_schema() -> None:
    with pytest.raises(SchemaError, match="needs a STRUCT schema"):
        Struct(INT32)


def test_struct_defaults_apply_when_unset_or_none() -> None:
    schema = struct_schema(
        [("n", Schema(Type.INT32, default=5)), ("s", OPTIONAL_STRING), ("o", OPTIONAL_INT32)]
    )
    s = Struct(schema)
    s.validate()
    assert s.get("n") == 5
    s.put("n", None)
    assert s.get("n") == 5
    assert s.get("s") is None
    assert s.as_dict() == {"n": 5, "s": None, "o": None}


def test_struct_missing_required_field_fails_validation() -> None:
    with pytest.raises(SchemaError, match="null value at 'city'"):
        Struct(ADDRESS).validate()


def test_struct_equality() -> None:
    assert _order() == _order()
    assert _order() != _order(id=2)
    assert hash(_order()) == hash(_order())
    same_fields_other_name = struct_schema([("city", STRING), ("zip", OPTIONAL_STRING)], name="X")
    assert Struct(ADDRESS, {"city": "a"}) != Struct(same_fields_other_name, {"city": "a"})
    defaulted = struct_schema([("n", Schema(Type.INT32, default=5))])
    # An unset field reads as its default, so it equals the field set to the default.
    assert Struct(defaulted) == Struct(defaulted, {"n": 5})
    assert Struct(ADDRESS, {"city": "a"}) != {"city": "a", "zip": None}


def test_as_dict_is_plain_and_ordered() -> None:
    d = _order().as_dict()
    assert list(d) == ["id", "items", "tags", "address"]
    assert d["items"] == [{"sku": "a", "qty": 1}]
    assert d["address"] == {"city": "Oslo", "zip": None}


def test_struct_schema_rejects_duplicate_fields_and_keeps_order() -> None:
    with pytest.raises(SchemaError, match="duplicate"):
        struct_schema([("a", INT8), ("a", INT16)])
    schema = struct_schema({"b": INT8, "a": INT16})
    assert [(f.name, f.index) for f in schema.fields] == [("b", 0), ("a", 1)]
    assert schema.field("a") is not None and schema.field("a").schema == INT16  # type: ignore[union-attr]
    assert schema.field("zzz") is None


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: Schema(Type.ARRAY), "array schema needs a value schema"),
        (lambda: Schema(Type.MAP, value_schema=INT8), "map schema needs a key schema"),
        (lambda: Schema(Type.INT8, fields=ADDRESS.fields), "only a struct schema has fields"),
        (lambda: Schema(Type.STRING, value_schema=INT8), "only array and map"),
        (lambda: Schema(Type.ARRAY, key_schema=INT8, value_schema=INT8), "only a map schema"),
        (lambda: Schema(Type.INT8, default=1000), "at '<default>' is out of range"),
        (lambda: Schema(Type.STRING, default=1), "takes str"),
        (
            lambda: Schema(Type.BYTES, name="org.apache.kafka.connect.data.Decimal"),
            "integer 'scale'",
        ),
    ],
)
def test_malformed_schemas_are_rejected_when_built(build: Any, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        build()


def test_schema_helpers() -> None:
    assert INT32.as_optional().optional and not INT32.optional
    assert decimal_schema(3, precision=10).params == {
        "scale": "3",
        "connect.decimal.precision": "10",
    }
    assert decimal_schema(3).type is Type.BYTES
    assert date_schema().type is Type.INT32 and time_schema().type is Type.INT32
    assert timestamp_schema().type is Type.INT64
    assert Type.STRUCT.is_primitive is False and Type.BYTES.is_primitive is True
