"""AvroConverter and its schema registry, against the bundled broker's real
key-value store: Confluent's schema mapping and wire format, round trips, ids
shared by workers."""

from __future__ import annotations

import datetime as dt
import io
import random
import threading
from collections.abc import Iterator
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from converter_strategies import SCHEMAS_AND_VALUES
from fastavro import parse_schema, schemaless_reader, schemaless_writer
from hypothesis import given, settings

from omconnect.access_point import MessagingAccessPoint
from omconnect.broker.api import KeyValue
from omconnect.connect.schema import (
    BOOLEAN,
    FLOAT64,
    INT32,
    INT64,
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
from omconnect.runtime.converters import ConversionError, make_converter
from omconnect.runtime.converters.avro import AvroConverter, from_avro_schema, to_avro_schema
from omconnect.runtime.converters.schema_registry import (
    KeyValueLike,
    SchemaRegistry,
    subject_name,
)

DECIMAL_NAME = "org.apache.kafka.connect.data.Decimal"


@pytest.fixture(scope="module")
def access_point(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MessagingAccessPoint]:
    data_dir = tmp_path_factory.mktemp("avro-kv")
    with MessagingAccessPoint.open(f"oms:embedded://local/ns?data_dir={data_dir}") as ap:
        yield ap


@pytest.fixture
def registry(access_point: MessagingAccessPoint, request: pytest.FixtureRequest) -> SchemaRegistry:
    # A prefix per test keeps the tests' ids apart on the shared store.
    return SchemaRegistry(access_point.kv, prefix=f"schemas/{request.node.name}/")


def avro_converter(
    registry: SchemaRegistry, is_key: bool = False, config: dict[str, Any] | None = None
) -> AvroConverter:
    conv = make_converter("avro", config or {}, is_key=is_key, registry=registry)
    assert isinstance(conv, AvroConverter)
    return conv


# -- Connect schema -> Avro schema, as Confluent's AvroData ----------------------------


def test_logical_types_and_small_ints_map_as_confluent_does() -> None:
    assert to_avro_schema(decimal_schema(2)) == {
        "type": "bytes",
        "scale": 2,
        "precision": 64,
        "connect.version": 1,
        "connect.parameters": {"scale": "2"},
        "connect.name": DECIMAL_NAME,
        "logicalType": "decimal",
    }
    assert to_avro_schema(Schema(Type.INT8)) == {"type": "int", "connect.type": "int8"}
    assert to_avro_schema(Schema(Type.INT16)) == {"type": "int", "connect.type": "int16"}
    assert to_avro_schema(timestamp_schema()) == {
        "type": "long",
        "connect.version": 1,
        "connect.name": "org.apache.kafka.connect.data.Timestamp",
        "logicalType": "timestamp-millis",
    }
    assert to_avro_schema(date_schema())["logicalType"] == "date"
    assert to_avro_schema(time_schema())["logicalType"] == "time-millis"
    assert to_avro_schema(FLOAT64) == "double"
    assert to_avro_schema(OPTIONAL_STRING) == ["null", "string"]


def test_structs_become_records_with_optional_fields_as_null_unions() -> None:
    schema = struct_schema(
        [
            ("id", INT64),
            ("name", OPTIONAL_STRING),
            ("level", Schema(Type.INT32, optional=True, default=3)),
            ("tags", array_schema(STRING)),
            ("attrs", map_schema(STRING, INT32)),
        ],
        name="com.example.User",
    )
    assert to_avro_schema(schema) == {
        "type": "record",
        "name": "User",
        "namespace": "com.example",
        "fields": [
            {"name": "id", "type": "long"},
            {"name": "name", "type": ["null", "string"], "default": None},
            {
                "name": "level",
                "type": [{"type": "int", "connect.default": 3}, "null"],
                "default": 3,
            },
            {"name": "tags", "type": {"type": "array", "items": "string"}},
            {"name": "attrs", "type": {"type": "map", "values": "int"}},
        ],
        "connect.name": "com.example.User",
    }


def test_maps_with_non_string_keys_are_arrays_of_map_entries() -> None:
    avro = to_avro_schema(
        struct_schema([("a", map_schema(INT32, STRING)), ("b", map_schema(INT64, BOOLEAN))])
    )
    entries = [f["type"]["items"] for f in avro["fields"]]
    assert [(e["namespace"], e["name"]) for e in entries] == [
        ("io.confluent.connect.avro", "MapEntry"),
        ("io.confluent.connect.avro", "MapEntry2"),
    ]
    assert entries[0]["fields"] == [
        {"name": "key", "type": "int"},
        {"name": "value", "type": "string"},
    ]
    parse_schema(avro, named_schemas={})  # unique names: valid Avro


def test_unnamed_structs_are_numbered_and_a_repeated_struct_is_referenced() -> None:
    point = struct_schema([("x", INT32)])
    other = struct_schema([("y", INT32)])
    avro = to_avro_schema(struct_schema([("p", point), ("q", point.as_optional()), ("o", other)]))
    assert avro["name"] == "ConnectDefault"
    types = [f["type"] for f in avro["fields"]]
    assert types[0]["name"] == "ConnectDefault2"
    assert types[1] == ["null", "io.confluent.connect.avro.ConnectDefault2"]
    assert types[2]["name"] == "ConnectDefault3"
    parse_schema(avro, named_schemas={})


def test_two_different_structs_with_one_name_cannot_be_avro() -> None:
    a = struct_schema([("x", INT32)], name="n.S")
    b = struct_schema([("y", INT32)], name="n.S")
    with pytest.raises(SchemaError, match="two different structs"):
        to_avro_schema(struct_schema([("a", a), ("b", b)]))


SCHEMAS = [
    Schema(Type.INT8),
    Schema(Type.INT16, optional=True),
    decimal_schema(4, precision=10),
    decimal_schema(0, optional=True),
    date_schema(),
    time_schema(optional=True),
    timestamp_schema(),
    array_schema(map_schema(INT32, struct_schema([("a", STRING)], name="a.B"))),
    struct_schema(
        [
            (
                "d",
                Schema(Type.STRING, default="x", doc="a doc", version=2, parameters=(("k", "v"),)),
            ),
            ("e", Schema(Type.BYTES, optional=True, default=b"\x00\xff")),
            ("f", decimal_schema(2, optional=True)),
            ("g", array_schema(Schema(Type.FLOAT32)).as_optional()),
        ],
        name="x.y.Z",
        doc="outer",
    ),
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=lambda s: s.type.value)
def test_schemas_round_trip_through_avro(schema: Schema) -> None:
    assert from_avro_schema(to_avro_schema(schema)) == schema


FOREIGN = {
    "type": "record",
    "name": "User",
    "namespace": "example.avro",
    "fields": [
        {"name": "name", "type": "string"},
        {"name": "number", "type": ["int", "null"], "default": 7},
        {"name": "color", "type": ["null", "string"], "default": None},
        {"name": "kind", "type": {"type": "enum", "name": "Kind", "symbols": ["A", "B"]}},
        {"name": "hash", "type": {"type": "fixed", "name": "MD5", "size": 2}},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 10, "scale": 2},
        },
        {"name": "born", "type": {"type": "int", "logicalType": "date"}},
        {"name": "seen", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {"name": "attrs", "type": {"type": "map", "values": "long"}},
        {"name": "count", "type": "int", "default": 3},
    ],
}
FOREIGN_CONNECT = struct_schema(
    [
        ("name", STRING),
        ("number", Schema(Type.INT32, optional=True, default=7)),
        ("color", OPTIONAL_STRING),
        (
            "kind",
            Schema(
                Type.STRING,
                parameters=(
                    ("io.confluent.connect.avro.Enum", "example.avro.Kind"),
                    ("io.confluent.connect.avro.Enum.A", "A"),
                    ("io.confluent.connect.avro.Enum.B", "B"),
                ),
            ),
        ),
        ("hash", Schema(Type.BYTES, parameters=(("connect.fixed.size", "2"),))),
        ("amount", decimal_schema(2, precision=10)),
        ("born", date_schema()),
        ("seen", timestamp_schema()),
        ("attrs", map_schema(STRING, INT64)),
        ("count", Schema(Type.INT32, default=3)),
    ],
    name="example.avro.User",
)


def test_avro_from_other_producers_maps_to_connect() -> None:
    assert from_avro_schema(FOREIGN) == FOREIGN_CONNECT


@pytest.mark.parametrize(
    "avro",
    [
        ["int", "string"],
        ["null", "int", "string"],
        "null",
        {"type": "record", "name": "R", "fields": [{"name": "me", "type": ["null", "R"]}]},
        {"type": "duration"},
        {"type": "record", "name": "R"},
    ],
)
def test_avro_that_connect_cannot_express_is_a_schema_error(avro: Any) -> None:
    with pytest.raises(SchemaError):
        from_avro_schema(avro)


# -- the converter ---------------------------------------------------------------------

NESTED = struct_schema(
    [
        ("id", INT64),
        ("small", Schema(Type.INT8)),
        ("price", decimal_schema(2, optional=True)),
        ("tags", array_schema(STRING)),
        ("scores", map_schema(STRING, FLOAT64.as_optional())),
        ("by_day", map_schema(date_schema(), array_schema(INT32))),
        (
            "inner",
            struct_schema([("at", timestamp_schema()), ("t", time_schema())], name="x.Inner"),
        ),
        (
            "again",
            struct_schema(
                [("at", timestamp_schema()), ("t", time_schema())], name="x.Inner"
            ).as_optional(),
        ),
        ("level", Schema(Type.INT32, optional=True, default=3)),
    ],
    name="x.Outer",
)


def nested_value() -> Struct:
    inner = NESTED.field("inner")
    assert inner is not None
    return Struct(
        NESTED,
        {
            "id": 2**40,
            "small": -5,
            "price": Decimal("-12.30"),
            "tags": ["a", ""],
            "scores": {"x": 0.25, "y": None},
            "by_day": {dt.date(2024, 2, 29): [1, -2], dt.date(1969, 7, 20): []},
            "inner": Struct(
                inner.schema,
                {
                    "at": dt.datetime(1999, 12, 31, 23, 59, 59, 999000, tzinfo=dt.UTC),
                    "t": dt.time(23, 59),
                },
            ),
            "again": None,
            "level": None,
        },
    )


def test_wire_format_is_magic_byte_schema_id_and_avro_binary(registry: SchemaRegistry) -> None:
    conv = avro_converter(registry)
    value = nested_value()
    data = conv.from_connect("orders", NESTED, value)
    assert data is not None
    avro = to_avro_schema(NESTED)
    schema_id = registry.lookup(avro)
    assert schema_id is not None
    assert data[0] == 0 and int.from_bytes(data[1:5], "big") == schema_id
    assert registry.versions("orders-value") == [schema_id]
    # Any Avro reader with the registered schema reads the body.
    parsed = parse_schema(registry.schema(schema_id))
    record: Any = schemaless_reader(io.BytesIO(data[5:]), parsed, None)
    assert record["id"] == 2**40 and record["small"] == -5 and record["level"] == 3


def test_nested_values_round_trip(registry: SchemaRegistry) -> None:
    conv = avro_converter(registry)
    value = nested_value()
    schema, back = conv.to_connect("orders", conv.from_connect("orders", NESTED, value))
    assert schema == NESTED
    assert back == value
    assert back.get("level") == 3


def test_a_second_converter_reads_through_the_store(
    registry: SchemaRegistry, access_point: MessagingAccessPoint
) -> None:
    data = avro_converter(registry).from_connect("t", NESTED, nested_value())
    other = SchemaRegistry(access_point.kv, prefix=registry._prefix)
    assert avro_converter(other).to_connect("t", data) == (NESTED, nested_value())


@settings(max_examples=80, deadline=None)
@given(SCHEMAS_AND_VALUES)
def test_every_schema_and_value_round_trips(
    access_point: MessagingAccessPoint, case: tuple[Schema, Any]
) -> None:
    schema, value = case
    conv = avro_converter(SchemaRegistry(access_point.kv, prefix="schemas/property/"))
    data = conv.from_connect("t", schema, value)
    if value is None:
        assert data is None
        return
    assert conv.to_connect("t", data) == (schema, value)


def test_reads_what_another_avro_producer_wrote(registry: SchemaRegistry) -> None:
    schema_id = registry.register("users-value", FOREIGN)
    record = {
        "name": "ann",
        "number": None,
        "color": "red",
        "kind": "B",
        "hash": b"\x01\x02",
        "amount": Decimal("10.25"),
        "born": dt.date(2000, 1, 2),
        "seen": dt.datetime(2020, 5, 6, 7, 8, 9, 10000, tzinfo=dt.UTC),
        "attrs": {"a": 1},
        "count": 4,
    }
    body = io.BytesIO()
    body.write(b"\x00" + schema_id.to_bytes(4, "big"))
    schemaless_writer(body, parse_schema(FOREIGN, named_schemas={}), record)
    schema, value = avro_converter(registry).to_connect("users", body.getvalue())
    assert schema == FOREIGN_CONNECT
    assert value == Struct(FOREIGN_CONNECT, {**record, "number": None})
    assert value.get("number") == 7  # a null field reads as its default


def test_tombstones_stay_tombstones(registry: SchemaRegistry) -> None:
    conv = avro_converter(registry)
    assert conv.from_connect("t", OPTIONAL_STRING, None) is None
    assert conv.from_connect("t", None, None) is None
    assert conv.to_connect("t", None) == (None, None)


def test_keys_go_to_the_key_subject(registry: SchemaRegistry) -> None:
    key_id = int.from_bytes(
        avro_converter(registry, is_key=True).from_connect("t", STRING, "k")[1:5], "big"
    )
    value_id = int.from_bytes(avro_converter(registry).from_connect("t", STRING, "v")[1:5], "big")
    assert key_id == value_id  # one schema, one id
    assert registry.versions(subject_name("t", True)) == [key_id]
    assert registry.subjects() == ["t-key", "t-value"]


def test_without_auto_register_an_unknown_schema_is_an_error(registry: SchemaRegistry) -> None:
    conv = avro_converter(registry, config={"auto.register.schemas": "false"})
    with pytest.raises(ConversionError, match="not registered"):
        conv.from_connect("t", INT32, 1)
    registry.register("t-value", to_avro_schema(INT32))
    assert conv.to_connect("t", conv.from_connect("t", INT32, 1)) == (INT32, 1)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "not Confluent wire format"),
        (b"\x00\x00\x00", "not Confluent wire format"),
        (b"\x01\x00\x00\x00\x01\x02", "not Confluent wire format"),
        (b"\x00\x00\x0f\x42\x40\x02", "no schema with id 1000000"),
    ],
)
def test_garbage_is_a_conversion_error(registry: SchemaRegistry, data: bytes, message: str) -> None:
    with pytest.raises(ConversionError, match=message) as info:
        avro_converter(registry).to_connect("orders", data)
    assert "value of a record of topic 'orders'" in str(info.value)


def test_truncated_or_padded_bodies_are_conversion_errors(registry: SchemaRegistry) -> None:
    conv = avro_converter(registry)
    data = conv.from_connect("t", NESTED, nested_value())
    assert data is not None
    for broken in (data[:-3], data[:7], data + b"\x00"):
        with pytest.raises(ConversionError):
            conv.to_connect("t", broken)


@pytest.mark.parametrize(
    ("schema", "value", "message"),
    [
        (None, {"a": 1}, "schemaless"),
        (INT32, "1", "int32 takes int"),
        (Schema(Type.INT8), 200, "out of range for int8"),
        (decimal_schema(1), Decimal("0.25"), "more than 1 digits"),
        (struct_schema([("a", INT32)]), {"a": 1}, "takes a Struct"),
    ],
)
def test_values_that_do_not_fit_are_conversion_errors(
    registry: SchemaRegistry, schema: Schema | None, value: Any, message: str
) -> None:
    with pytest.raises(ConversionError, match=message):
        avro_converter(registry).from_connect("t", schema, value)


# -- the registry ----------------------------------------------------------------------


def test_the_same_schema_gets_the_same_id_and_a_new_one_a_new_id(registry: SchemaRegistry) -> None:
    first = registry.register("a-value", {"type": "int", "connect.type": "int8"})
    assert registry.register("a-value", {"connect.type": "int8", "type": "int"}) == first
    assert registry.register("b-value", '{"type": "int", "connect.type": "int8"}') == first
    second = registry.register("a-value", {"type": "int", "connect.type": "int16"})
    assert second != first  # properties matter: int8 and int16 read back differently
    assert registry.versions("a-value") == [first, second]
    assert registry.versions("b-value") == [first]
    assert registry.latest("a-value") == (second, {"connect.type": "int16", "type": "int"})
    assert registry.latest("nothing") is None


def test_invalid_avro_is_refused(registry: SchemaRegistry) -> None:
    with pytest.raises(SchemaError, match="not a valid Avro schema"):
        registry.register(
            "x-value", {"type": "record", "name": "R", "fields": [{"name": "a", "type": "nope"}]}
        )


def test_two_workers_registering_at_once_agree_on_ids(access_point: MessagingAccessPoint) -> None:
    shared: list[dict[str, Any]] = [
        {"type": "record", "name": f"S{i}", "fields": [{"name": "a", "type": "int"}]}
        for i in range(15)
    ]
    own: dict[int, list[dict[str, Any]]] = {
        w: [{"type": "enum", "name": f"E{w}_{i}", "symbols": ["A"]} for i in range(10)]
        for w in range(4)
    }
    workers = [SchemaRegistry(access_point.kv, prefix="schemas/race/") for _ in range(2)]
    start = threading.Barrier(4)
    results: dict[int, dict[str, int]] = {}
    errors: list[BaseException] = []

    def run(worker: int) -> None:
        try:
            registry = workers[worker % 2]
            todo = [*shared, *own[worker]]
            random.Random(worker).shuffle(todo)
            start.wait()
            results[worker] = {
                s["name"]: registry.register(f"topic{worker % 3}-value", s) for s in todo
            }
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors
    for schema in shared:  # every worker got the same id for the same schema
        assert len({results[w][schema["name"]] for w in range(4)}) == 1
    ids = {name: schema_id for r in results.values() for name, schema_id in r.items()}
    assert len(set(ids.values())) == len(ids) == 15 + 40  # different schemas, different ids
    fresh = SchemaRegistry(access_point.kv, prefix="schemas/race/")
    for name, schema_id in ids.items():
        schema = fresh.schema(schema_id)
        assert isinstance(schema, dict) and schema["name"] == name
    # topic0-value got versions from workers 0 and 3, each schema once
    assert sorted(fresh.versions("topic0-value")) == sorted(
        {*results[0].values(), *results[3].values()}
    )


class CountingStore:
    """The real store, counting reads (to see the cache at work)."""

    def __init__(self, kv: KeyValueLike) -> None:
        self.kv = kv
        self.gets = 0

    def get(self, key: str) -> KeyValue | None:
        self.gets += 1
        return self.kv.get(key)

    def put(self, key: str, value: bytes, ttl_ms: int = 0) -> int:
        return self.kv.put(key, value, ttl_ms)

    def compare_and_set(
        self, key: str, value: bytes, expected_revision: int, ttl_ms: int = 0
    ) -> int | None:
        return self.kv.compare_and_set(key, value, expected_revision, ttl_ms)

    def delete(self, key: str, expected_revision: int = -1) -> bool:
        return self.kv.delete(key, expected_revision)

    def list(self, prefix: str = "") -> list[KeyValue]:
        return self.kv.list(prefix)


def test_lookups_are_cached(access_point: MessagingAccessPoint) -> None:
    schema_id = SchemaRegistry(access_point.kv, prefix="schemas/cache/").register(
        "c-value", "string"
    )
    store = CountingStore(access_point.kv)
    registry = SchemaRegistry(store, prefix="schemas/cache/")
    for _ in range(5):
        assert registry.schema(schema_id) == "string"
    assert store.gets == 1
    with pytest.raises(LookupError):
        registry.schema(schema_id + 1000)


def test_ids_survive_a_restart(tmp_path: Path) -> None:
    url = f"oms:embedded://local/ns?data_dir={tmp_path}"
    with MessagingAccessPoint.open(url) as ap:
        data = avro_converter(SchemaRegistry(ap.kv)).from_connect("t", NESTED, nested_value())
    with MessagingAccessPoint.open(url) as ap:
        registry = SchemaRegistry(ap.kv)
        assert avro_converter(registry).to_connect("t", data) == (NESTED, nested_value())
        assert registry.register("t-value", to_avro_schema(NESTED)) == int.from_bytes(
            data[1:5], "big"
        )
        assert registry.register("t-value", "long") == 2


def _with_defaults() -> Schema:
    point = struct_schema([("a", INT32)], name="p.Q").as_optional()
    return struct_schema(
        [
            ("point", replace(point, default=Struct(point, {"a": 5}))),
            ("map", Schema(Type.MAP, key_schema=STRING, value_schema=INT32, default={"x": 1})),
            ("list", Schema(Type.ARRAY, optional=True, value_schema=INT32, default=[1, 2])),
        ]
    )


def test_struct_map_and_array_defaults_round_trip(registry: SchemaRegistry) -> None:
    schema = _with_defaults()
    assert from_avro_schema(to_avro_schema(schema)) == schema
    conv = avro_converter(registry)
    _, value = conv.to_connect("t", conv.from_connect("t", schema, Struct(schema, {})))
    assert value.get("point").get("a") == 5
    assert value.get("map") == {"x": 1} and value.get("list") == [1, 2]
