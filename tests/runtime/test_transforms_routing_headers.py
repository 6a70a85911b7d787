"""RegexRouter, InsertHeader, DropHeaders, HeaderFrom, Filter and the predicates."""

from __future__ import annotations

import datetime as dt
import decimal
from typing import Any

import pytest
from transform_helpers import configured, record

from omconnect.connect.records import Header, Headers
from omconnect.connect.schema import (
    BOOLEAN,
    FLOAT32,
    FLOAT64,
    INT8,
    INT16,
    INT32,
    INT64,
    STRING,
    Schema,
    Struct,
    date_schema,
    decimal_schema,
    struct_schema,
    time_schema,
    timestamp_schema,
)
from omconnect.errors import ConfigError
from omconnect.runtime.transforms import DataError
from omconnect.runtime.transforms.filter import Filter
from omconnect.runtime.transforms.headers import (
    DropHeaders,
    HeaderFromKey,
    HeaderFromValue,
    InsertHeader,
)
from omconnect.runtime.transforms.predicates import (
    HasHeaderKey,
    RecordIsTombstone,
    TopicNameMatches,
)
from omconnect.runtime.transforms.routing import RegexRouter
from omconnect.runtime.transforms.values import to_float32

UTC = dt.UTC

# RegexRouter


@pytest.mark.parametrize(
    ("regex", "replacement", "topic", "expected"),
    [
        ("(.*)-raw", "$1-clean", "orders-raw", "orders-clean"),
        ("(.*)-raw", "$1-clean", "orders-raw-2", "orders-raw-2"),  # must match the whole topic
        ("raw", "x", "orders-raw", "orders-raw"),
        ("a|ab", "X", "ab", "Xb"),  # matches(), then replaceFirst finds "a"
        ("(?<db>\\w+)\\.(?<table>\\w+)", "${table}_from_${db}", "shop.orders", "orders_from_shop"),
        ("(.*)", "\\$1-$1", "t", "$1-t"),
        ("(a)(b)?", "[$2]", "a", "[]"),
        ("(.*)", "$12", "t", "t2"),  # no group 12: group 1, then a literal 2
        ("topic", "renamed", "topic", "renamed"),
    ],
)
def test_regex_router(regex: str, replacement: str, topic: str, expected: str) -> None:
    router = configured(RegexRouter, regex=regex, replacement=replacement)
    out = router.apply(record({"a": 1}, topic=topic))
    assert (out.topic, out.partition, out.value) == (expected, 3, {"a": 1})


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"regex": "(", "replacement": "x"}, "regex"),
        ({"regex": "(a)", "replacement": "$2"}, "replacement"),
        ({"regex": "(a)", "replacement": "${name}"}, "replacement"),
        ({"regex": "(a)", "replacement": "$"}, "replacement"),
        ({"regex": "(a)", "replacement": "x\\"}, "replacement"),
        ({"regex": "a"}, "replacement"),
        ({"replacement": "a"}, "regex"),
    ],
)
def test_regex_router_config_errors(config: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configured(RegexRouter, config)
    assert caught.value.key == key


# InsertHeader


@pytest.mark.parametrize(
    ("literal", "schema", "value"),
    [
        ("42", INT8, 42),
        ("-200", INT16, -200),
        ("70000", INT32, 70000),
        ("3000000000", INT64, 3_000_000_000),
        ("1e3", INT16, 1000),
        ("1.5", FLOAT32, 1.5),
        ("3.14", FLOAT32, to_float32(3.14)),
        ("1e300", FLOAT64, 1e300),
        (
            "123456789012345678901234",
            decimal_schema(0),
            decimal.Decimal("123456789012345678901234"),
        ),
        ("true", BOOLEAN, True),
        ("False", BOOLEAN, False),
        ("2024-01-31", date_schema(), dt.date(2024, 1, 31)),
        ("12:30:00.250Z", time_schema(), dt.time(12, 30, 0, 250_000)),
        (
            "2024-01-31T12:30:00.250Z",
            timestamp_schema(),
            dt.datetime(2024, 1, 31, 12, 30, 0, 250_000, tzinfo=UTC),
        ),
        ("hello world", STRING, "hello world"),
        ("12 monkeys", STRING, "12 monkeys"),
        ("", STRING, ""),
        ("null", None, None),
    ],
)
def test_insert_header_infers_the_literal_type(
    literal: str, schema: Schema | None, value: Any
) -> None:
    out = configured(InsertHeader, {"header": "h", "value.literal": literal}).apply(
        record({"a": 1})
    )
    assert out.headers.last("h") == Header("h", value, schema)
    assert out.value == {"a": 1}


def test_insert_header_appends_after_existing_headers() -> None:
    transform = configured(InsertHeader, {"header": "h", "value.literal": "new"})
    out = transform.apply(record(headers=Headers.of({"h": "old", "x": "1"})))
    assert [(h.key, h.value) for h in out.headers] == [("h", "old"), ("x", "1"), ("h", "new")]


def test_insert_header_needs_both_keys() -> None:
    with pytest.raises(ConfigError) as caught:
        configured(InsertHeader, header="h")
    assert caught.value.key == "value.literal"


# DropHeaders


def test_drop_headers_removes_every_header_with_a_listed_key() -> None:
    headers = Headers((Header("a", 1), Header("b", 2), Header("a", 3), Header("c", 4)))
    out = configured(DropHeaders, headers="a, c, missing").apply(record(headers=headers))
    assert [(h.key, h.value) for h in out.headers] == [("b", 2)]


def test_drop_headers_needs_a_list() -> None:
    with pytest.raises(ConfigError) as caught:
        configured(DropHeaders, headers="")
    assert caught.value.key == "headers"


# HeaderFrom

PERSON = struct_schema([("id", INT64), ("name", STRING), ("ssn", STRING)], name="Person")


def person() -> Struct:
    return Struct(PERSON, {"id": 1, "name": "Ada", "ssn": "x"})


def test_header_from_schemaless_copy_and_move() -> None:
    value = {"id": 1, "name": "Ada"}
    copy = configured(HeaderFromValue, fields="id,gone", headers="h_id,h_gone", operation="copy")
    out = copy.apply(record(value))
    assert out.value == value
    assert [(h.key, h.value, h.schema) for h in out.headers] == [
        ("h_id", 1, None),
        ("h_gone", None, None),
    ]
    move = configured(HeaderFromValue, fields="id", headers="h_id", operation="move")
    moved = move.apply(record(value))
    assert moved.value == {"name": "Ada"}
    assert moved.headers.last("h_id") == Header("h_id", 1)


def test_header_from_struct_copy_keeps_the_value_and_gives_headers_schemas() -> None:
    transform = configured(HeaderFromValue, fields="id,name", headers="id,name", operation="copy")
    r = record(person(), PERSON)
    out = transform.apply(r)
    assert (out.value, out.value_schema) == (r.value, PERSON)
    assert list(out.headers) == [Header("id", 1, INT64), Header("name", "Ada", STRING)]


def test_header_from_struct_move_drops_the_fields_from_the_schema() -> None:
    transform = configured(HeaderFromValue, fields="ssn", headers="pii.ssn", operation="move")
    out = transform.apply(record(person(), PERSON))
    assert [f.name for f in out.value_schema.fields] == ["id", "name"]
    assert out.value_schema.name == "Person"
    assert out.value.as_dict() == {"id": 1, "name": "Ada"}
    assert out.headers.last("pii.ssn") == Header("pii.ssn", "x", STRING)
    assert transform.apply(record(person(), PERSON)).value_schema is out.value_schema


def test_header_from_key() -> None:
    transform = configured(HeaderFromKey, fields="id", headers="key_id", operation="move")
    out = transform.apply(record("v", key={"id": 7, "region": "eu"}))
    assert (out.key, out.value) == ({"region": "eu"}, "v")
    assert out.headers.last("key_id") == Header("key_id", 7)


def test_header_from_errors_and_tombstones() -> None:
    transform = configured(HeaderFromValue, fields="nope", headers="h", operation="copy")
    with pytest.raises(DataError, match="nope"):
        transform.apply(record(person(), PERSON))
    with pytest.raises(DataError, match="map"):
        transform.apply(record("text"))
    tombstone = record(None, PERSON)
    assert transform.apply(tombstone) is tombstone


@pytest.mark.parametrize(
    ("config", "key"),
    [
        ({"fields": "a,b", "headers": "h", "operation": "copy"}, "headers"),
        ({"fields": "a", "headers": "h", "operation": "cut"}, "operation"),
        ({"fields": "a", "headers": "h"}, "operation"),
        ({"fields": "", "headers": "h", "operation": "copy"}, "fields"),
    ],
)
def test_header_from_config_errors(config: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configured(HeaderFromValue, config)
    assert caught.value.key == key


# Filter and predicates


def test_filter_drops_every_record() -> None:
    assert configured(Filter).apply(record({"a": 1})) is None
    assert configured(Filter).apply(record(None)) is None


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("orders.*", "orders-eu", True),
        ("orders", "orders-eu", False),
        ("eu", "orders-eu", False),
        (".*-(eu|us)", "orders-us", True),
        ("(?<region>eu)-.*", "eu-orders", True),
    ],
)
def test_topic_name_matches_the_whole_name(pattern: str, topic: str, matches: bool) -> None:
    assert configured(TopicNameMatches, pattern=pattern).test(record(topic=topic)) is matches


def test_has_header_key() -> None:
    predicate = configured(HasHeaderKey, name="trace")
    assert predicate.test(record(headers=Headers.of({"trace": None})))
    assert not predicate.test(record(headers=Headers.of({"other": "trace"})))


def test_record_is_tombstone_looks_at_the_value_only() -> None:
    predicate = configured(RecordIsTombstone)
    assert predicate.test(record(None, key="k"))
    assert not predicate.test(record({"a": 1}, key=None))


@pytest.mark.parametrize(
    ("cls", "config", "key"),
    [
        (TopicNameMatches, {}, "pattern"),
        (TopicNameMatches, {"pattern": "[a-"}, "pattern"),
        (HasHeaderKey, {}, "name"),
        (HasHeaderKey, {"name": ""}, "name"),
    ],
)
def test_predicate_config_errors(cls: type, config: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        configured(cls, config)
    assert caught.value.key == key
