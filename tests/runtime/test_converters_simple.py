"""StringConverter, ByteArrayConverter, the logical-type wire forms, and how a config
names a converter."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from omconnect.connect.schema import (
    INT32,
    OPTIONAL_BYTES,
    OPTIONAL_STRING,
    STRING,
    Schema,
    Struct,
    Type,
    struct_schema,
)
from omconnect.errors import ConfigError
from omconnect.runtime.converters import (
    CONVERTER_ALIASES,
    ConversionError,
    Converter,
    converter_class,
    converter_config,
    make_converter,
)
from omconnect.runtime.converters.avro import AvroConverter
from omconnect.runtime.converters.bytes import ByteArrayConverter
from omconnect.runtime.converters.json import JsonConverter
from omconnect.runtime.converters.logical import (
    bytes_to_decimal,
    decimal_to_bytes,
    int_to_twos_complement,
)
from omconnect.runtime.converters.string import StringConverter

# -- StringConverter -------------------------------------------------------------------


def test_string_round_trip_in_utf8_by_default() -> None:
    conv = make_converter("string", {}, is_key=True)
    assert conv.from_connect("t", STRING, "h\u00e9llo \u2603") == "h\u00e9llo \u2603".encode()
    assert conv.to_connect("t", "h\u00e9llo".encode()) == (OPTIONAL_STRING, "h\u00e9llo")


def test_string_converter_writes_any_value_as_its_text() -> None:
    conv = make_converter("string", {}, is_key=False)
    assert conv.from_connect("t", INT32, 42) == b"42"
    struct = Struct(struct_schema([("a", INT32)]), {"a": 1})
    assert conv.from_connect("t", None, struct) == str(struct).encode()


def test_string_converter_encoding_is_configurable() -> None:
    conv = make_converter("string", {"converter.encoding": "latin-1"}, is_key=False)
    assert conv.from_connect("t", STRING, "\u00e9") == b"\xe9"
    assert conv.to_connect("t", b"\xe9") == (OPTIONAL_STRING, "\u00e9")
    with pytest.raises(ConversionError, match="latin-1"):
        conv.from_connect("t", STRING, "\u2603")


def test_string_converter_tombstones() -> None:
    conv = make_converter("string", {}, is_key=False)
    assert conv.from_connect("t", OPTIONAL_STRING, None) is None
    assert conv.to_connect("t", None) == (OPTIONAL_STRING, None)


def test_invalid_text_is_a_conversion_error_naming_the_topic() -> None:
    conv = make_converter("string", {}, is_key=False)
    with pytest.raises(ConversionError, match="value of a record of topic 'logs'"):
        conv.to_connect("logs", b"\xff\xfe\xfa")


def test_unknown_encoding_is_a_config_error() -> None:
    with pytest.raises(ConfigError) as info:
        make_converter("string", {"converter.encoding": "klingon"}, is_key=False)
    assert info.value.key == "converter.encoding"


# -- ByteArrayConverter ----------------------------------------------------------------


def test_bytes_pass_through_unchanged() -> None:
    conv = make_converter("bytes", {}, is_key=False)
    assert conv.from_connect("t", Schema(Type.BYTES), b"\x00\x01") == b"\x00\x01"
    assert conv.from_connect("t", None, bytearray(b"ab")) == b"ab"
    assert conv.from_connect("t", None, memoryview(b"cd")) == b"cd"
    assert conv.to_connect("t", b"\x00\xff") == (OPTIONAL_BYTES, b"\x00\xff")
    assert conv.from_connect("t", OPTIONAL_BYTES, None) is None
    assert conv.to_connect("t", None) == (OPTIONAL_BYTES, None)


@pytest.mark.parametrize(
    ("schema", "value", "message"),
    [(STRING, b"x", "schema is string"), (None, "text", "str is not bytes"), (None, 1, "int")],
)
def test_non_bytes_are_conversion_errors(schema: Schema | None, value: Any, message: str) -> None:
    with pytest.raises(ConversionError, match=message):
        ByteArrayConverter().from_connect("t", schema, value)


# -- logical wire forms ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (0, b"\x00"),
        (1, b"\x01"),
        (127, b"\x7f"),
        (128, b"\x00\x80"),
        (156, b"\x00\x9c"),
        (-1, b"\xff"),
        (-128, b"\x80"),
        (-129, b"\xff\x7f"),
        (1012345, b"\x0f\x72\x79"),
    ],
)
def test_twos_complement_matches_java_biginteger(number: int, expected: bytes) -> None:
    assert int_to_twos_complement(number) == expected


@given(st.integers(min_value=-(10**40), max_value=10**40), st.integers(0, 12))
def test_decimal_bytes_round_trip(unscaled: int, scale: int) -> None:
    value = Decimal(f"{unscaled}E-{scale}")  # exact, unlike scaleb (28 digits)
    data = decimal_to_bytes(value, scale)
    assert bytes_to_decimal(data, scale) == value
    assert int.from_bytes(data, "big", signed=True) == unscaled


def test_decimal_with_fewer_places_is_padded_and_more_refused() -> None:
    assert decimal_to_bytes(Decimal("1.5"), 2) == decimal_to_bytes(Decimal("1.50"), 2)
    with pytest.raises(ValueError, match="more than 2 digits"):
        decimal_to_bytes(Decimal("1.505"), 2)


# -- naming converters -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "cls"),
    [
        ("json", JsonConverter),
        ("string", StringConverter),
        ("bytes", ByteArrayConverter),
        ("avro", AvroConverter),
        ("org.apache.kafka.connect.json.JsonConverter", JsonConverter),
        ("org.apache.kafka.connect.storage.StringConverter", StringConverter),
        ("org.apache.kafka.connect.converters.ByteArrayConverter", ByteArrayConverter),
        ("io.confluent.connect.avro.AvroConverter", AvroConverter),
        ("omconnect.runtime.converters.json.JsonConverter", JsonConverter),
        ("omconnect.runtime.converters.string:StringConverter", StringConverter),
    ],
)
def test_converters_are_found_by_alias_kafka_name_or_class_path(
    name: str, cls: type[Converter]
) -> None:
    assert converter_class(name) is cls


def test_every_alias_loads_a_converter() -> None:
    for name in CONVERTER_ALIASES:
        assert issubclass(converter_class(name), Converter)


def test_unknown_or_wrong_classes_are_config_errors_on_the_converter_key() -> None:
    with pytest.raises(ConfigError, match="known aliases") as info:
        make_converter("protobuf", {}, is_key=True)
    assert info.value.key == "key.converter"
    with pytest.raises(ConfigError, match="not a converter") as info:
        make_converter("omconnect.connect.schema.Struct", {}, is_key=False)
    assert info.value.key == "value.converter"


def test_avro_without_a_registry_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="schema registry") as info:
        make_converter("avro", {}, is_key=False)
    assert info.value.key == "value.converter"


def test_converter_config_takes_the_prefixed_keys() -> None:
    worker = {
        "key.converter": "json",
        "key.converter.schemas.enable": "false",
        "value.converter.schemas.enable": "true",
        "value.converter.decimal.format": "NUMERIC",
        "group.id": "g",
    }
    assert converter_config(worker, is_key=True) == {"schemas.enable": "false"}
    assert converter_config(worker, is_key=False) == {
        "schemas.enable": "true",
        "decimal.format": "NUMERIC",
    }
