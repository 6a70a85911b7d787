"""InsertField, ReplaceField and MaskField, schemaless and with Struct values."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest
from transform_helpers import configured, record, sink_record

from omconnect.connect.schema import (
    BYTES,
    FLOAT32,
    INT8,
    INT32,
    INT64,
    OPTIONAL_STRING,
    STRING,
    Schema,
    Struct,
    Type,
    array_schema,
    struct_schema,
    timestamp_schema,
)
from omconnect.errors import ConfigError
from omconnect.runtime.transforms import DataError
from omconnect.runtime.transforms.fields import (
    InsertField,
    InsertFieldKey,
    InsertFieldValue,
    MaskFieldKey,
    MaskFieldValue,
    ReplaceFieldKey,
    ReplaceFieldValue,
)
from omconnect.runtime.transforms.util import field_value

UTC = dt.UTC
PERSON = struct_schema([("id", INT64), ("name", STRING)], name="com.example.Person")
ALL_INSERTS = {
    "topic.field": "topic!",
    "partition.field": "partition",
    "timestamp.field": "ts?",
    "static.field": "origin",
    "static.value": "eu-1",
}


def person(id_: int = 7, name: str = "Ada") -> Struct:
    return Struct(PERSON, {"id": id_, "name": name})


# InsertField


def test_insert_field_schemaless_adds_metadata_and_static_value() -> None:
    transform = configured(InsertFieldValue, ALL_INSERTS)
    out = transform.apply(record({"a": 1}))
    assert out.value == {
        "a": 1,
        "topic": "orders",
        "partition": 3,
        "ts": 1_700_000_000_123,
        "origin": "eu-1",
    }
    assert out.value_schema is None


def test_insert_field_with_schema_rebuilds_the_struct_with_typed_fields() -> None:
    transform = configured(InsertFieldValue, ALL_INSERTS)
    out = transform.apply(record(person(), PERSON))
    schema = out.value_schema
    assert [f.name for f in schema.fields] == ["id", "name", "topic", "partition", "ts", "origin"]
    assert schema.name == "com.example.Person"
    assert schema.field("topic").schema == STRING  # "!" : required
    assert schema.field("partition").schema == INT32.as_optional()
    assert schema.field("ts").schema == timestamp_schema(optional=True)
    assert schema.field("origin").schema == OPTIONAL_STRING
    assert out.value.as_dict() == {
        "id": 7,
        "name": "Ada",
        "topic": "orders",
        "partition": 3,
        "ts": dt.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC),
        "origin": "eu-1",
    }
    out.value.validate()


def test_insert_field_caches_the_rebuilt_schema() -> None:
    transform = configured(InsertFieldValue, {"topic.field": "t"})
    first = transform.apply(record(person(1), PERSON))
    second = transform.apply(record(person(2), PERSON))
    assert first.value_schema is second.value_schema


def test_insert_field_key_works_on_the_key_and_leaves_the_value() -> None:
    transform = configured(InsertFieldKey, {"topic.field": "t"})
    out = transform.apply(record({"v": 1}, key={"k": 1}))
    assert out.key == {"k": 1, "t": "orders"}
    assert out.value == {"v": 1}


def test_insert_field_offset_only_for_sink_records() -> None:
    transform = configured(InsertFieldValue, {"offset.field": "offset"})
    assert transform.apply(sink_record({"a": 1}, offset=99)).value == {"a": 1, "offset": 99}
    with pytest.raises(DataError, match="sink records"):
        transform.apply(record({"a": 1}))


def test_insert_field_skips_a_missing_partition_and_timestamp() -> None:
    transform = configured(InsertFieldValue, {"partition.field": "p", "timestamp.field": "ts"})
    assert transform.apply(record({"a": 1}, partition=None, timestamp=None)).value == {"a": 1}


def test_insert_field_passes_tombstones_through() -> None:
    transform = configured(InsertFieldValue, {"topic.field": "t"})
    tombstone = record(None, PERSON)
    assert transform.apply(tombstone) is tombstone


@pytest.mark.parametrize("value", ["text", 5, [1, 2]])
def test_insert_field_schemaless_needs_a_map(value: object) -> None:
    with pytest.raises(DataError, match="map"):
        configured(InsertFieldValue, {"topic.field": "t"}).apply(record(value))


def test_insert_field_with_schema_needs_a_struct() -> None:
    with pytest.raises(DataError, match="Struct"):
        configured(InsertFieldValue, {"topic.field": "t"}).apply(record("text", STRING))


def test_insert_field_refuses_to_duplicate_an_existing_field() -> None:
    with pytest.raises(DataError, match="duplicate"):
        configured(InsertFieldValue, {"topic.field": "name"}).apply(record(person(), PERSON))


def test_insert_field_replace_null_with_default() -> None:
    schema = struct_schema([("level", Schema(Type.STRING, default="info"))])
    value = Struct(schema, {"level": None})
    keep = configured(InsertFieldValue, {"topic.field": "t"})
    raw = configured(InsertFieldValue, {"topic.field": "t", "replace.null.with.default": "false"})
    # Struct.get reads a null as the default either way; the stored value differs.
    assert field_value(keep.apply(record(value, schema)).value, "level", False) == "info"
    assert field_value(raw.apply(record(value, schema)).value, "level", False) is None


@pytest.mark.parametrize(
    ("config", "key"),
    [({}, ""), ({"static.field": "s"}, "static.value")],
)
def test_insert_field_config_errors(config: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configured(InsertFieldValue, config)
    assert caught.value.key == key


def test_insert_field_base_class_needs_a_side() -> None:
    with pytest.raises(ConfigError, match=r"InsertField\$Key or InsertField\$Value"):
        configured(InsertField, {"topic.field": "t"})


# ReplaceField


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({}, {"a": 1, "b": 2, "c": 3}),
        ({"exclude": "b"}, {"a": 1, "c": 3}),
        ({"include": "a,c"}, {"a": 1, "c": 3}),
        ({"include": "a,b", "exclude": "b"}, {"a": 1}),
        ({"renames": "a:x,c:y"}, {"x": 1, "b": 2, "y": 3}),
        ({"include": "a", "renames": "a:x"}, {"x": 1}),
        ({"blacklist": "a"}, {"b": 2, "c": 3}),
        ({"whitelist": "a"}, {"a": 1}),
        ({"exclude": ["a", "b"]}, {"c": 3}),
    ],
)
def test_replace_field_schemaless(config: dict[str, object], expected: dict[str, int]) -> None:
    out = configured(ReplaceFieldValue, config).apply(record({"a": 1, "b": 2, "c": 3}))
    assert out.value == expected


def test_replace_field_with_schema_filters_and_renames_fields_of_the_schema() -> None:
    schema = struct_schema(
        [("id", INT64), ("name", STRING), ("ssn", STRING)], name="P", doc="people"
    )
    value = Struct(schema, {"id": 1, "name": "Ada", "ssn": "x"})
    transform = configured(ReplaceFieldValue, {"exclude": "ssn", "renames": "name:full_name"})
    out = transform.apply(record(value, schema))
    assert [(f.name, f.schema) for f in out.value_schema.fields] == [
        ("id", INT64),
        ("full_name", STRING),
    ]
    assert (out.value_schema.name, out.value_schema.doc) == ("P", "people")
    assert out.value.as_dict() == {"id": 1, "full_name": "Ada"}
    assert transform.apply(record(value, schema)).value_schema is out.value_schema


def test_replace_field_key_and_tombstones() -> None:
    transform = configured(ReplaceFieldKey, {"exclude": "b"})
    out = transform.apply(record({"v": 1}, key={"a": 1, "b": 2}))
    assert (out.key, out.value) == ({"a": 1}, {"v": 1})
    no_key = record({"v": 1}, key=None)
    assert transform.apply(no_key) is no_key


def test_replace_field_rename_onto_an_existing_field_is_a_data_error() -> None:
    with pytest.raises(DataError, match="duplicate"):
        configured(ReplaceFieldValue, {"renames": "id:name"}).apply(record(person(), PERSON))


@pytest.mark.parametrize("renames", ["a", "a:b:c", "a:b,c"])
def test_replace_field_rejects_malformed_renames(renames: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configured(ReplaceFieldValue, {"renames": renames})
    assert caught.value.key == "renames"
    assert "old:new" in caught.value.reason


# MaskField


def test_mask_field_schemaless_uses_the_null_of_each_type() -> None:
    value = {
        "i": 42,
        "f": 2.5,
        "s": "secret",
        "b": True,
        "l": [1, 2],
        "m": {"k": "v"},
        "d": decimal.Decimal("9.99"),
        "ts": dt.datetime(2024, 1, 1, tzinfo=UTC),
        "day": dt.date(2024, 1, 1),
        "keep": "visible",
    }
    fields = "i,f,s,b,l,m,d,ts,day"
    out = configured(MaskFieldValue, fields=fields).apply(record(value))
    assert out.value == {
        "i": 0,
        "f": 0.0,
        "s": "",
        "b": False,
        "l": [],
        "m": {},
        "d": decimal.Decimal(0),
        "ts": dt.datetime(1970, 1, 1, tzinfo=UTC),
        "day": dt.date(1970, 1, 1),
        "keep": "visible",
    }
    assert isinstance(out.value["f"], float)
    assert value["s"] == "secret"  # the input is not modified


def test_mask_field_schemaless_sets_absent_and_null_fields_to_null() -> None:
    out = configured(MaskFieldValue, fields="gone,none").apply(record({"none": None}))
    assert out.value == {"none": None, "gone": None}


@pytest.mark.parametrize(
    ("value", "replacement", "expected"),
    [
        ("4111-1111", "****", "****"),
        (123, "-1", -1),
        (1.5, "0.25", 0.25),
        (decimal.Decimal("1.0"), "2.50", decimal.Decimal("2.50")),
    ],
)
def test_mask_field_replacement_is_converted_to_the_field_type(
    value: object, replacement: str, expected: object
) -> None:
    out = configured(MaskFieldValue, fields="x", replacement=replacement).apply(
        record({"x": value})
    )
    assert out.value["x"] == expected
    assert type(out.value["x"]) is type(expected)


@pytest.mark.parametrize(
    ("value", "replacement", "message"),
    [
        (True, "x", "custom replacement"),
        ([1], "x", "custom replacement"),
        (5, "five", "unable to convert"),
        (5, "1.5", "unable to convert"),
        (1.5, "abc", "unable to convert"),
    ],
)
def test_mask_field_replacement_that_does_not_fit_is_a_data_error(
    value: object, replacement: str, message: str
) -> None:
    transform = configured(MaskFieldValue, fields="x", replacement=replacement)
    with pytest.raises(DataError, match=message):
        transform.apply(record({"x": value}))


def test_mask_field_with_schema_keeps_the_schema_and_masks_listed_fields() -> None:
    schema = struct_schema(
        [("id", INT64), ("tiny", INT8), ("ratio", FLOAT32), ("tags", array_schema(STRING))]
    )
    value = Struct(schema, {"id": 5, "tiny": 3, "ratio": 0.5, "tags": ["a"]})
    out = configured(MaskFieldValue, fields="tiny,ratio,tags,absent").apply(record(value, schema))
    assert out.value_schema is schema
    assert out.value.as_dict() == {"id": 5, "tiny": 0, "ratio": 0.0, "tags": []}


def test_mask_field_replacement_respects_the_schema_width() -> None:
    schema = struct_schema([("tiny", INT8)])
    value = Struct(schema, {"tiny": 3})
    assert (
        configured(MaskFieldValue, fields="tiny", replacement="-128")
        .apply(record(value, schema))
        .value.get("tiny")
        == -128
    )
    with pytest.raises(DataError, match="unable to convert"):
        configured(MaskFieldValue, fields="tiny", replacement="300").apply(record(value, schema))


def test_mask_field_cannot_mask_bytes() -> None:
    schema = struct_schema([("blob", BYTES)])
    with pytest.raises(DataError, match="cannot mask value of type bytes"):
        configured(MaskFieldValue, fields="blob").apply(
            record(Struct(schema, {"blob": b"x"}), schema)
        )


def test_mask_field_key_and_tombstones() -> None:
    transform = configured(MaskFieldKey, fields="user")
    out = transform.apply(record({"user": "v"}, key={"user": "k"}))
    assert (out.key, out.value) == ({"user": ""}, {"user": "v"})
    tombstone = record(None)
    assert configured(MaskFieldValue, fields="user").apply(tombstone) is tombstone


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({}, "fields"),
        ({"fields": ""}, "fields"),
        ({"fields": "a", "replacement": ""}, "replacement"),
    ],
)
def test_mask_field_config_errors(config: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configured(MaskFieldValue, config)
    assert caught.value.key == key
