"""Records: immutability, new_record, source maps, headers, topic partitions."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from omconnect.connect.records import (
    ConnectRecord,
    Headers,
    SinkRecord,
    SourceRecord,
    TopicPartition,
    check_source_map,
    partition_key,
)
from omconnect.connect.schema import INT64, STRING
from omconnect.errors import ConfigError


def _source(**changes: Any) -> SourceRecord:
    fields: dict[str, Any] = {
        "topic": "logs",
        "partition": 2,
        "key_schema": STRING,
        "key": "k",
        "value_schema": INT64,
        "value": 5,
        "timestamp": 1000,
        "headers": Headers.of({"h": "1"}),
        "source_partition": {"file": "/var/log/a"},
        "source_offset": {"position": 10},
    }
    fields.update(changes)
    return SourceRecord(**fields)


def test_new_record_keeps_subclass_and_unchanged_fields() -> None:
    record = _source()
    changed = record.new_record(topic="other", value=6)
    assert type(changed) is SourceRecord
    assert (changed.topic, changed.value) == ("other", 6)
    assert changed.source_partition == {"file": "/var/log/a"}
    assert changed.source_offset == {"position": 10}
    assert (changed.key, changed.key_schema, changed.timestamp) == ("k", STRING, 1000)
    assert changed.headers == record.headers
    assert record.topic == "logs" and record.value == 5  # the original is untouched


def test_new_record_keeps_sink_fields() -> None:
    record = SinkRecord("t", 1, None, None, None, "v", offset=41, original_topic="t")
    changed = record.new_record(topic="renamed")
    assert type(changed) is SinkRecord
    assert (changed.offset, changed.original_topic) == (41, "t")


def test_new_record_rejects_unknown_fields() -> None:
    with pytest.raises(TypeError):
        _source().new_record(nonsense=1)


def test_records_are_immutable() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        _source().topic = "x"  # type: ignore[misc]


def test_source_record_copies_its_source_maps() -> None:
    offset = {"position": 10}
    record = _source(source_offset=offset)
    offset["position"] = 20  # a task reusing its dict for the next record
    assert record.source_offset == {"position": 10}


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("source_partition", {"file": ["a"]}, "'file' must be a JSON scalar, not list"),
        ("source_offset", {1: 2}, "keys must be strings"),
        ("source_offset", {"nested": {"a": 1}}, "must be a JSON scalar, not dict"),
        ("source_partition", [("a", 1)], "must be a mapping"),
    ],
)
def test_source_record_rejects_bad_source_maps(field: str, value: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as caught:
        _source(**{field: value})
    assert caught.value.key == field


def test_check_source_map_accepts_json_scalars_and_returns_a_copy() -> None:
    value = {"s": "x", "i": 1, "f": 1.5, "b": True, "n": None}
    checked = check_source_map("source_offset", value)
    assert checked == value and checked is not value


def test_check_source_map_rejects_bytes() -> None:
    with pytest.raises(ConfigError, match="'b' must be a JSON scalar, not bytes"):
        check_source_map("source_offset", {"b": b"x"})


def test_partition_key_ignores_key_order() -> None:
    assert partition_key({"a": 1, "b": "x"}) == partition_key({"b": "x", "a": 1})
    assert partition_key({"a": 1}) != partition_key({"a": 2})
    assert {partition_key({"a": 1}): "ok"}[partition_key({"a": 1})] == "ok"


def test_headers() -> None:
    headers = Headers.of({"a": 1}).with_header("b", 2).with_header("a", 3)
    assert [(h.key, h.value) for h in headers] == [("a", 1), ("b", 2), ("a", 3)]
    assert len(headers) == 3
    last = headers.last("a")
    assert last is not None and last.value == 3
    assert headers.last("zzz") is None
    assert [h.key for h in headers.without("a")] == ["b"]
    assert len(Headers.of({"a": 1})) == 1  # with_header returned copies


def test_sink_record_topic_partition_is_where_it_was_read() -> None:
    read = SinkRecord(
        "t", 3, None, None, None, "v", 0, Headers(), 7, "t", original_partition=3, original_offset=7
    )
    assert read.topic_partition == TopicPartition("t", 3)
    routed = read.new_record(topic="t-2024", partition=0)
    assert routed.topic_partition == TopicPartition("t", 3)
    bare = SinkRecord("u", 1, None, None, None, "v")
    assert bare.topic_partition == TopicPartition("u", 1)


def test_topic_partition_is_hashable_ordered_and_printable() -> None:
    tps = {TopicPartition("b", 0), TopicPartition("a", 1), TopicPartition("a", 0)}
    assert sorted(tps) == [TopicPartition("a", 0), TopicPartition("a", 1), TopicPartition("b", 0)]
    assert str(TopicPartition("a", 1)) == "a-1"


def test_connect_record_partition_may_be_left_to_the_producer() -> None:
    record = ConnectRecord("t", None, None, b"key", None, b"value")
    assert record.partition is None and record.timestamp is None and len(record.headers) == 0
