"""ExtractField (with V2 nested paths), HoistField and ValueToKey."""

from __future__ import annotations

import pytest
from transform_helpers import configured, record

from omconnect.connect.schema import (
    INT32,
    INT64,
    OPTIONAL_STRING,
    STRING,
    Schema,
    SchemaError,
    Struct,
    Type,
    struct_schema,
)
from omconnect.errors import ConfigError
from omconnect.runtime.transforms import DataError
from omconnect.runtime.transforms.reshape import (
    ExtractFieldKey,
    ExtractFieldValue,
    HoistFieldKey,
    HoistFieldValue,
    ValueToKey,
)
from omconnect.runtime.transforms.util import parse_field_path

ADDRESS = struct_schema([("city", STRING), ("zip", OPTIONAL_STRING)], optional=True)
CUSTOMER = struct_schema([("id", INT64), ("address", ADDRESS)], name="Customer")


def customer(city: str = "Oslo", address: bool = True) -> Struct:
    values: dict[str, object] = {"id": 9}
    if address:
        values["address"] = Struct(ADDRESS, {"city": city})
    return Struct(CUSTOMER, values)


# ExtractField


def test_extract_field_schemaless() -> None:
    out = configured(ExtractFieldValue, field="id").apply(record({"id": 5, "x": 1}))
    assert (out.value, out.value_schema) == (5, None)


def test_extract_field_schemaless_missing_field_gives_null() -> None:
    assert configured(ExtractFieldValue, field="nope").apply(record({"id": 5})).value is None


def test_extract_field_with_schema_takes_the_field_schema() -> None:
    out = configured(ExtractFieldValue, field="id").apply(record(customer(), CUSTOMER))
    assert (out.value, out.value_schema) == (9, INT64)


def test_extract_field_null_value_passes_as_null_with_the_field_schema() -> None:
    out = configured(ExtractFieldValue, field="id").apply(record(None, CUSTOMER))
    assert (out.value, out.value_schema) == (None, INT64)
    assert configured(ExtractFieldValue, field="id").apply(record(None)).value is None


def test_extract_field_unknown_field_with_schema_is_a_data_error() -> None:
    with pytest.raises(DataError, match="unknown field: nope"):
        configured(ExtractFieldValue, field="nope").apply(record(customer(), CUSTOMER))


def test_extract_field_needs_a_map_or_a_struct() -> None:
    with pytest.raises(DataError):
        configured(ExtractFieldValue, field="a").apply(record("text"))
    with pytest.raises(DataError):
        configured(ExtractFieldValue, field="a").apply(record("text", STRING))


def test_extract_field_key() -> None:
    out = configured(ExtractFieldKey, field="id").apply(record({"v": 1}, key={"id": "k-1"}))
    assert (out.key, out.value) == ("k-1", {"v": 1})


def test_extract_field_v1_treats_dots_as_part_of_the_name() -> None:
    value = {"address.city": "flat", "address": {"city": "nested"}}
    assert configured(ExtractFieldValue, field="address.city").apply(record(value)).value == "flat"


@pytest.mark.parametrize("version", ["V2", "v2"])
def test_extract_field_v2_reaches_nested_map_fields(version: str) -> None:
    transform = configured(
        ExtractFieldValue, {"field": "address.city", "field.syntax.version": version}
    )
    assert transform.apply(record({"address": {"city": "Oslo"}})).value == "Oslo"
    assert transform.apply(record({"address": None})).value is None
    assert transform.apply(record({})).value is None
    with pytest.raises(DataError, match="map"):
        transform.apply(record({"address": "Main St 1"}))


def test_extract_field_v2_reaches_nested_struct_fields() -> None:
    transform = configured(
        ExtractFieldValue, {"field": "address.city", "field.syntax.version": "V2"}
    )
    out = transform.apply(record(customer("Bergen"), CUSTOMER))
    assert (out.value, out.value_schema) == ("Bergen", STRING)
    assert transform.apply(record(customer(address=False), CUSTOMER)).value is None
    with pytest.raises(DataError, match="unknown field"):
        configured(
            ExtractFieldValue, {"field": "address.street", "field.syntax.version": "V2"}
        ).apply(record(customer(), CUSTOMER))


def test_extract_field_v2_backticks_keep_dots_in_a_name() -> None:
    transform = configured(
        ExtractFieldValue, {"field": "`foo.bar`.baz", "field.syntax.version": "V2"}
    )
    assert transform.apply(record({"foo.bar": {"baz": 1}, "foo": {"bar": 2}})).value == 1


@pytest.mark.parametrize(
    ("path", "steps"),
    [
        ("a", ("a",)),
        ("a.b.c", ("a", "b", "c")),
        ("`a.b`.c", ("a.b", "c")),
        ("a.`b.c`", ("a", "b.c")),
        ("`a`b`.c", ("a`b", "c")),
        ("`a\\`.b`.c", ("a`.b", "c")),
        ("a.", ("a", "")),
        ("", ("",)),
    ],
)
def test_field_path_v2_syntax(path: str, steps: tuple[str, ...]) -> None:
    assert parse_field_path(path, "V2") == steps


@pytest.mark.parametrize("path", ["`a.b", "a.`b", "`a\\`"])
def test_field_path_v2_unclosed_backtick_is_a_config_error(path: str) -> None:
    with pytest.raises(ConfigError, match="incomplete backtick"):
        parse_field_path(path, "V2")


@pytest.mark.parametrize(
    ("config", "key"),
    [({}, "field"), ({"field": "a", "field.syntax.version": "V3"}, "field.syntax.version")],
)
def test_extract_field_config_errors(config: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configured(ExtractFieldValue, config)
    assert caught.value.key == key


# HoistField


@pytest.mark.parametrize("value", [42, "text", None, [1, 2], {"a": 1}])
def test_hoist_field_schemaless_wraps_anything(value: object) -> None:
    assert configured(HoistFieldValue, field="wrapped").apply(record(value)).value == {
        "wrapped": value
    }


def test_hoist_field_with_schema_builds_a_one_field_struct() -> None:
    transform = configured(HoistFieldValue, field="n")
    out = transform.apply(record(42, INT32))
    assert [(f.name, f.schema) for f in out.value_schema.fields] == [("n", INT32)]
    assert out.value.as_dict() == {"n": 42}
    assert transform.apply(record(43, INT32)).value_schema is out.value_schema


def test_hoist_field_key() -> None:
    out = configured(HoistFieldKey, field="id").apply(record("v", key=7, key_schema=INT64))
    assert out.key == Struct(struct_schema([("id", INT64)]), {"id": 7})
    assert out.value == "v"


def test_hoist_field_null_into_a_required_field_is_a_record_error() -> None:
    with pytest.raises(SchemaError):
        configured(HoistFieldValue, field="n").apply(record(None, INT32))
    out = configured(HoistFieldValue, field="n").apply(record(None, INT32.as_optional()))
    assert out.value.get("n") is None


# ValueToKey


def test_value_to_key_schemaless() -> None:
    out = configured(ValueToKey, fields="id,region").apply(
        record({"id": 1, "region": "eu", "x": 2}, key="old")
    )
    assert (out.key, out.key_schema) == ({"id": 1, "region": "eu"}, None)
    assert out.value == {"id": 1, "region": "eu", "x": 2}


def test_value_to_key_schemaless_absent_field_is_null() -> None:
    assert configured(ValueToKey, fields="id,nope").apply(record({"id": 1})).key == {
        "id": 1,
        "nope": None,
    }


def test_value_to_key_with_schema_builds_a_key_struct() -> None:
    transform = configured(ValueToKey, fields="address,id")
    out = transform.apply(record(customer(), CUSTOMER))
    assert [(f.name, f.schema) for f in out.key_schema.fields] == [
        ("address", ADDRESS),
        ("id", INT64),
    ]
    assert out.key.as_dict() == {"address": {"city": "Oslo", "zip": None}, "id": 9}
    assert transform.apply(record(customer("X"), CUSTOMER)).key_schema is out.key_schema


def test_value_to_key_field_missing_from_the_schema_is_a_data_error() -> None:
    with pytest.raises(DataError, match="field does not exist: nope"):
        configured(ValueToKey, fields="nope").apply(record(customer(), CUSTOMER))


def test_value_to_key_rejects_a_tombstone_as_kafka_does() -> None:
    with pytest.raises(DataError):
        configured(ValueToKey, fields="id").apply(record(None))


def test_value_to_key_uses_the_default_for_a_null_field() -> None:
    schema = struct_schema([("region", Schema(Type.STRING, default="eu"))])
    out = configured(ValueToKey, fields="region").apply(record(Struct(schema, {}), schema))
    assert out.key.get("region") == "eu"


def test_value_to_key_needs_fields() -> None:
    with pytest.raises(ConfigError) as caught:
        configured(ValueToKey, fields="")
    assert caught.value.key == "fields"
