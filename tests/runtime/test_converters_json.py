"""JsonConverter: Kafka's envelope byte for byte, round trips, schemaless JSON, errors."""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import replace
from decimal import Decimal
from typing import Any

import pytest
from converter_strategies import SCHEMAS_AND_VALUES
from hypothesis import given, settings
from hypothesis import strategies as st

from omconnect.connect.schema import (
    BOOLEAN,
    FLOAT64,
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
from omconnect.runtime.converters import ConversionError, make_converter
from omconnect.runtime.converters.json import JsonConverter

DECIMAL_NAME = "org.apache.kafka.connect.data.Decimal"


def converter(**config: Any) -> JsonConverter:
    conv = JsonConverter()
    conv.configure({k.replace("_", "."): v for k, v in config.items()}, is_key=False)
    return conv


def envelope(schema: Any, payload: Any) -> bytes:
    return json.dumps({"schema": schema, "payload": payload}, separators=(",", ":")).encode()


USERS = struct_schema([("id", INT32), ("name", OPTIONAL_STRING)], name="users")


# -- the exact bytes Kafka's JsonConverter writes ------------------------------------


@pytest.mark.parametrize(
    ("schema", "value", "expected"),
    [
        (BOOLEAN, True, b'{"schema":{"type":"boolean","optional":false},"payload":true}'),
        (Schema(Type.INT8), 12, b'{"schema":{"type":"int8","optional":false},"payload":12}'),
        (
            INT64,
            4398046511104,
            b'{"schema":{"type":"int64","optional":false},"payload":4398046511104}',
        ),
        (FLOAT64, 12.34, b'{"schema":{"type":"double","optional":false},"payload":12.34}'),
        (
            Schema(Type.FLOAT32).as_optional(),
            0.5,
            b'{"schema":{"type":"float","optional":true},"payload":0.5}',
        ),
        (
            OPTIONAL_STRING,
            "foo-bar-baz",
            b'{"schema":{"type":"string","optional":true},"payload":"foo-bar-baz"}',
        ),
        (
            Schema(Type.BYTES),
            b"test-string",
            b'{"schema":{"type":"bytes","optional":false},"payload":"dGVzdC1zdHJpbmc="}',
        ),
        (
            array_schema(INT32),
            [1, 2, 3],
            b'{"schema":{"type":"array","items":{"type":"int32","optional":false},"optional":false},'
            b'"payload":[1,2,3]}',
        ),
        (
            map_schema(STRING, INT32),
            {"key1": 12, "key2": 15},
            b'{"schema":{"type":"map","keys":{"type":"string","optional":false},'
            b'"values":{"type":"int32","optional":false},"optional":false},'
            b'"payload":{"key1":12,"key2":15}}',
        ),
        (
            map_schema(INT32, INT32),
            {1: 12, 2: 15},
            b'{"schema":{"type":"map","keys":{"type":"int32","optional":false},'
            b'"values":{"type":"int32","optional":false},"optional":false},'
            b'"payload":[[1,12],[2,15]]}',
        ),
        (
            USERS,
            Struct(USERS, {"id": 1, "name": "alice"}),
            b'{"schema":{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},'
            b'{"type":"string","optional":true,"field":"name"}],"optional":false,"name":"users"},'
            b'"payload":{"id":1,"name":"alice"}}',
        ),
    ],
    ids=[
        "boolean",
        "int8",
        "int64",
        "double",
        "float",
        "string",
        "bytes",
        "array",
        "map",
        "map-pairs",
        "struct",
    ],
)
def test_envelope_bytes_match_kafka(schema: Schema, value: Any, expected: bytes) -> None:
    conv = converter()
    assert conv.from_connect("t", schema, value) == expected
    assert conv.to_connect("t", expected) == (schema, value)


def test_decimal_is_base64_of_the_unscaled_twos_complement_bytes() -> None:
    # Kafka's JsonConverterTest: 1.56 at scale 2 is unscaled 156 = 0x009C.
    schema = decimal_schema(2)
    data = converter().from_connect("t", schema, Decimal("1.56"))
    expected_schema = {
        "type": "bytes",
        "optional": False,
        "name": DECIMAL_NAME,
        "version": 1,
        "parameters": {"scale": "2"},
    }
    assert data == envelope(expected_schema, "AJw=")
    # Kafka's decimal.format documentation: 101.2345 is "D3J5" (BASE64) or 101.2345.
    assert (
        json.loads(converter().from_connect("t", decimal_schema(4), Decimal("101.2345")))["payload"]
        == "D3J5"
    )
    numeric = converter(decimal_format="NUMERIC")
    data = numeric.from_connect("t", decimal_schema(4), Decimal("101.2345"))
    assert data.endswith(b'"payload":101.2345}')
    assert numeric.to_connect("t", data) == (decimal_schema(4), Decimal("101.2345"))


def test_negative_and_large_decimals_round_trip_in_both_formats() -> None:
    schema = decimal_schema(3)
    for text in ("-0.001", "-128.000", "12345678901234567890123456789.123", "0.000"):
        for fmt in ("BASE64", "NUMERIC"):
            conv = converter(decimal_format=fmt)
            _, value = conv.to_connect("t", conv.from_connect("t", schema, Decimal(text)))
            assert value == Decimal(text)
            assert value.as_tuple().exponent == -3


def test_a_numeric_decimal_is_read_by_a_base64_converter_too() -> None:
    # As Kafka: the reader accepts either form whatever its own decimal.format.
    data = envelope(
        json.loads(converter().from_connect("t", decimal_schema(2), Decimal("1")))["schema"], 1.5
    )
    assert converter().to_connect("t", data)[1] == Decimal("1.50")


def test_date_time_timestamp_are_integers() -> None:
    conv = converter()
    cases = [
        (date_schema(), dt.date(1997, 5, 19), 10000),
        (time_schema(), dt.time(4, 0), 14_400_000),
        (timestamp_schema(), dt.datetime(2001, 9, 9, 1, 46, 40, tzinfo=dt.UTC), 1_000_000_000_000),
        (date_schema(), dt.date(1969, 12, 31), -1),
    ]
    for schema, value, wire in cases:
        data = conv.from_connect("t", schema, value)
        node = json.loads(data)
        assert node["payload"] == wire
        assert node["schema"]["name"] == schema.name and node["schema"]["version"] == 1
        assert conv.to_connect("t", data) == (schema, value)


def test_schema_metadata_doc_version_parameters_default() -> None:
    schema = Schema(
        Type.INT32,
        optional=True,
        default=12,
        name="n",
        version=3,
        doc="d",
        parameters=(("a", "b"),),
    )
    data = converter().from_connect("t", schema, 5)
    assert data == (
        b'{"schema":{"type":"int32","optional":true,"name":"n","version":3,"doc":"d",'
        b'"parameters":{"a":"b"},"default":12},"payload":5}'
    )
    assert converter().to_connect("t", data) == (schema, 5)


def test_null_with_default_is_written_as_the_default_unless_told_otherwise() -> None:
    schema = Schema(Type.INT32, optional=True, default=12)
    assert json.loads(converter().from_connect("t", schema, None))["payload"] == 12
    off = converter(replace_null_with_default="false")
    data = off.from_connect("t", schema, None)
    assert json.loads(data)["payload"] is None
    assert off.to_connect("t", data) == (schema, None)
    assert converter().to_connect("t", data) == (schema, 12)


def test_reading_kafka_envelopes_without_optional_means_required() -> None:
    conv = converter()
    assert conv.to_connect("t", b'{ "schema": { "type": "boolean" }, "payload": true }') == (
        BOOLEAN,
        True,
    )
    text = (
        b'{"schema":{"type":"struct","fields":[{"field":"a","type":"int64","optional":true},'
        b'{"field":"b","type":"string"}]},"payload":{"a":null,"b":"x","ignored":1}}'
    )
    schema, value = conv.to_connect("t", text)
    assert schema == struct_schema([("a", INT64.as_optional()), ("b", STRING)])
    assert value == Struct(schema, {"a": None, "b": "x"})


NESTED = struct_schema(
    [
        ("id", INT64),
        ("price", decimal_schema(2, optional=True)),
        ("tags", array_schema(STRING)),
        ("scores", map_schema(STRING, FLOAT64.as_optional())),
        ("by_day", map_schema(date_schema(), array_schema(INT32))),
        (
            "inner",
            struct_schema(
                [("at", timestamp_schema()), ("raw", Schema(Type.BYTES))], name="x.Inner"
            ),
        ),
        ("maybe", struct_schema([("flag", BOOLEAN)]).as_optional()),
    ],
    name="x.Outer",
    doc="an outer struct",
)


def test_nested_structs_arrays_maps_round_trip() -> None:
    inner = NESTED.field("inner")
    assert inner is not None
    value = Struct(
        NESTED,
        {
            "id": 7,
            "price": Decimal("-3.50"),
            "tags": ["a", "b"],
            "scores": {"x": 1.5, "y": None},
            "by_day": {dt.date(2024, 2, 29): [1, 2], dt.date(1900, 1, 1): []},
            "inner": Struct(
                inner.schema, {"at": dt.datetime(2024, 1, 1, 12, tzinfo=dt.UTC), "raw": b"\x00\xff"}
            ),
            "maybe": None,
        },
    )
    for fmt in ("BASE64", "NUMERIC"):
        conv = converter(decimal_format=fmt)
        assert conv.to_connect("t", conv.from_connect("t", NESTED, value)) == (NESTED, value)


@settings(max_examples=150, deadline=None)
@given(SCHEMAS_AND_VALUES)
def test_every_schema_and_value_round_trips(case: tuple[Schema, Any]) -> None:
    schema, value = case
    for conv in (converter(), converter(decimal_format="NUMERIC")):
        data = conv.from_connect("t", schema, value)
        assert conv.to_connect("t", data) == (schema, value)


# -- schemaless ------------------------------------------------------------------------


def test_schemaless_is_plain_json() -> None:
    conv = converter(schemas_enable=False)
    value = {"a": 1, "b": [1, 2.5, "x", None, True], "c": {"d": {}}}
    data = conv.from_connect("t", None, value)
    assert data == b'{"a":1,"b":[1,2.5,"x",null,true],"c":{"d":{}}}'
    assert conv.to_connect("t", data) == (None, value)
    assert conv.from_connect("t", None, b"\x01\x02") == b'"AQI="'
    assert conv.from_connect("t", None, {1: "a"}) == b'[[1,"a"]]'
    assert conv.to_connect("t", b"[1, 2.5]") == (None, [1, 2.5])
    assert conv.to_connect("t", '"h\u00e9"'.encode()) == (None, "h\u00e9")


def test_schemaless_with_a_schema_writes_the_payload_only() -> None:
    conv = converter(schemas_enable="false")
    value = Struct(USERS, {"id": 1, "name": None})
    assert conv.from_connect("t", USERS, value) == b'{"id":1,"name":null}'
    assert conv.from_connect("t", None, value) == b'{"id":1,"name":null}'


def test_schemaless_value_in_an_envelope_has_a_null_schema() -> None:
    conv = converter()
    data = conv.from_connect("t", None, {"a": [1.5]})
    assert data == b'{"schema":null,"payload":{"a":[1.5]}}'
    result = conv.to_connect("t", data)
    assert result == (None, {"a": [1.5]}) and isinstance(result[1]["a"][0], float)


def test_schemaless_cannot_hold_python_objects_without_json_form() -> None:
    with pytest.raises(ConversionError, match="give the record a schema"):
        converter(schemas_enable=False).from_connect("t", None, {"when": dt.date(2024, 1, 1)})


# -- tombstones ------------------------------------------------------------------------


def test_tombstones_stay_tombstones() -> None:
    for conv in (converter(), converter(schemas_enable=False)):
        assert conv.from_connect("t", None, None) is None
        assert conv.to_connect("t", None) == (None, None)


def test_null_with_an_optional_schema_is_a_null_payload_as_in_kafka() -> None:
    data = converter().from_connect("t", OPTIONAL_STRING, None)
    assert data == b'{"schema":{"type":"string","optional":true},"payload":null}'
    assert converter().to_connect("t", data) == (OPTIONAL_STRING, None)


# -- errors ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not JSON"),
        (b"{", "not JSON"),
        (b"\xff\xfe\x00", "not JSON"),
        (b"[1]", "schemas.enable=false"),
        (b'{"schema":null,"payload":1,"extra":2}', "schemas.enable=false"),
        (b'{"schema":{"type":"int8"},"payload":300}', "out of range for int8"),
        (b'{"schema":{"type":"int32"},"payload":"12"}', "int32 takes int"),
        (b'{"schema":{"type":"int32"},"payload":1.5}', "int32 takes int"),
        (b'{"schema":{"type":"boolean"},"payload":1}', "boolean needs true or false"),
        (b'{"schema":{"type":"bytes"},"payload":"%%%"}', "not valid base64"),
        (b'{"schema":{"type":"string"},"payload":null}', "null for a required string"),
        (b'{"schema":{"type":"uuid"},"payload":"x"}', "no valid 'type'"),
        (b'{"schema":{"type":"array"},"payload":[]}', "no 'items' schema"),
        (
            b'{"schema":{"type":"struct","fields":[{"type":"int32"}]},"payload":{}}',
            "no 'field' name",
        ),
        (
            b'{"schema":{"type":"struct","fields":[{"field":"a","type":"int32"}]},"payload":{"a":"x"}}',
            "at 'a'",
        ),
        (
            b'{"schema":{"type":"map","keys":{"type":"int32"},"values":{"type":"int32"}},"payload":{"1":2}}',
            "array of pairs",
        ),
        (
            b'{"schema":{"type":"int32","name":"org.apache.kafka.connect.data.Time"},"payload":-5}',
            "Time must be",
        ),
    ],
)
def test_garbage_is_a_conversion_error(data: bytes, message: str) -> None:
    with pytest.raises(ConversionError, match=message) as info:
        converter().to_connect("orders", data)
    assert "'orders'" in str(info.value) and "value" in str(info.value)


@pytest.mark.parametrize(
    ("schema", "value", "message"),
    [
        (Schema(Type.INT8), 128, "out of range for int8"),
        (INT32, "1", "int32 takes int"),
        (INT32, True, "int32 takes int"),
        (STRING, None, "null for a required string"),
        (decimal_schema(2), Decimal("1.234"), "more than 2 digits"),
        (decimal_schema(2), Decimal("NaN"), "cannot hold NaN"),
        (decimal_schema(2), 1.5, "takes decimal.Decimal"),
        (date_schema(), dt.datetime(2024, 1, 1), "takes datetime.date"),
        (USERS, {"id": 1}, "takes a Struct"),
        (USERS, Struct(struct_schema([("id", INT32)])), "schema is not the record's schema"),
    ],
)
def test_values_that_do_not_fit_their_schema_are_conversion_errors(
    schema: Schema, value: Any, message: str
) -> None:
    conv = make_converter("json", {}, is_key=True)
    with pytest.raises(ConversionError, match=message) as info:
        conv.from_connect("orders", schema, value)
    assert "key of a record of topic 'orders'" in str(info.value)


def test_errors_name_the_path_inside_the_value() -> None:
    schema = struct_schema([("items", array_schema(struct_schema([("qty", Schema(Type.INT16))])))])
    text = envelope(
        json.loads(converter().from_connect("t", schema, Struct(schema, {"items": []})))["schema"],
        {"items": [{"qty": 1}, {"qty": 70000}]},
    )
    with pytest.raises(ConversionError, match=r"at 'items\[1\]\.qty'"):
        converter().to_connect("t", text)


# -- configuration ---------------------------------------------------------------------


def test_config_is_validated_with_the_key_named() -> None:
    with pytest.raises(ConfigError) as info:
        converter(decimal_format="HEX")
    assert info.value.key == "decimal.format"
    with pytest.raises(ConfigError) as info:
        converter(schemas_enable="maybe")
    assert info.value.key == "schemas.enable"


def test_kafka_class_name_and_alias_make_the_same_converter() -> None:
    config = {"schemas.enable": "false"}
    for name in ("json", "org.apache.kafka.connect.json.JsonConverter"):
        conv = make_converter(name, config, is_key=False)
        assert isinstance(conv, JsonConverter)
        assert conv.from_connect("t", INT32, 1) == b"1"


def test_struct_map_and_array_defaults_round_trip() -> None:
    point = struct_schema([("a", INT32)], name="p.Q").as_optional()
    schema = struct_schema(
        [
            ("point", replace(point, default=Struct(point, {"a": 5}))),
            ("map", Schema(Type.MAP, key_schema=STRING, value_schema=INT32, default={"x": 1})),
            ("list", Schema(Type.ARRAY, optional=True, value_schema=INT32, default=[1, 2])),
        ]
    )
    conv = converter()
    data = conv.from_connect("t", schema, Struct(schema, {}))
    assert json.loads(data)["payload"] == {"point": {"a": 5}, "map": {"x": 1}, "list": [1, 2]}
    assert conv.to_connect("t", data) == (schema, Struct(schema, {}))


def test_a_struct_without_a_schema_is_written_with_its_own() -> None:
    value = Struct(USERS, {"id": 3, "name": "bo"})
    assert converter().to_connect("t", converter().from_connect("t", None, value)) == (USERS, value)


_SHARED = converter()  # one converter across examples: its schema cache sees them all


@given(st.lists(SCHEMAS_AND_VALUES, min_size=1, max_size=6))
@settings(max_examples=60)
def test_the_schema_cache_of_one_converter_never_mixes_schemas(
    cases: list[tuple[Schema, Any]],
) -> None:
    encoded = [(_SHARED.from_connect("t", s, v), s, v) for s, v in cases]
    for _ in range(2):  # the second pass reads every schema from the cache
        for data, schema, value in encoded:
            assert _SHARED.to_connect("t", data) == (schema, value)


def test_envelopes_in_another_layout_are_read_in_full() -> None:
    conv = converter()
    compact = conv.from_connect("t", USERS, Struct(USERS, {"id": 1, "name": "a"}))
    node = json.loads(compact)
    spaced = json.dumps({"payload": node["payload"], "schema": node["schema"]}, indent=1)
    assert conv.to_connect("t", spaced.encode()) == conv.to_connect("t", compact)
    assert conv.to_connect("t", compact)[1] == Struct(USERS, {"id": 1, "name": "a"})
    with pytest.raises(ConversionError):
        conv.to_connect("t", compact[:-1] + b',"extra":1}')
