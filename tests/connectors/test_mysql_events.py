"""Change events of the MySQL source: Debezium's envelope for c/u/d/r/t, keys,
primary-key changes and tombstones (pure: rows in their raw forms, no server)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pytest

from omconnect.connect.schema import Struct, Type
from omconnect.connectors.mysql.events import EventBuilder
from omconnect.connectors.mysql.filters import Filters, parse_filters
from omconnect.connectors.mysql.tables import Column, Table


def _column(name: str, position: int, data_type: str, nullable: bool = True, **kw: Any) -> Column:
    return Column(
        name, position, data_type, kw.pop("column_type", data_type), False, nullable, **kw
    )


ORDERS = Table(
    "shop",
    "orders",
    (
        _column("id", 1, "int", nullable=False),
        _column("name", 2, "varchar", charset="utf8mb4", length=64),
        _column("qty", 3, "int"),
        _column("price", 4, "decimal", precision=10, scale=2),
        _column("ratio", 5, "double"),
        _column("updated", 6, "datetime", nullable=False, datetime_precision=6),
    ),
    ("id",),
)
NO_PK = Table("shop", "log", (_column("line", 1, "text"), _column("n", 2, "int")))

SOURCE = {
    "ts_ms": 1_795_326_861_000,
    "db": "shop",
    "table": "orders",
    "server_id": 1,
    "file": "binlog.000001",
    "pos": 4,
    "row": 0,
}
WHEN = dt.datetime(2026, 11, 22, 5, 54, 21, 123456)
ROW = {"id": 1, "name": "a", "qty": 2, "price": Decimal("9.99"), "ratio": 0.5, "updated": WHEN}
WHEN_US = 1_795_326_861_123_456
CONVERTED = {"id": 1, "name": "a", "qty": 2, "price": Decimal("9.99"), "ratio": 0.5,
             "updated": WHEN_US}  # fmt: skip


def _builder(**config: str) -> EventBuilder:
    return EventBuilder("srv", parse_filters(config) if config else Filters.all())


def _check(key: Struct | None, value: Struct | None) -> None:
    """Each struct holds values of its schema."""
    for struct in (key, value):
        if struct is not None:
            struct.schema.validate(struct)


def _shape(events: list[tuple[Struct | None, Struct | None]]) -> list[Any]:
    for key, value in events:
        _check(key, value)
    return [
        (
            None if key is None else key.as_dict(),
            None
            if value is None
            else (value.get("op"), _image(value, "before"), _image(value, "after")),
        )
        for key, value in events
    ]


def _image(value: Struct, field: str) -> Any:
    image = value.get(field)
    return None if image is None else image.as_dict()


def test_create_envelope_names_and_fields() -> None:
    builder = _builder()
    [(key, value)] = builder.change_events(ORDERS, "c", None, ROW, SOURCE, 123)
    assert key is not None and value is not None
    _check(key, value)
    assert builder.topic(ORDERS) == "srv.shop.orders"
    assert key.schema.name == "srv.shop.orders.Key" and key.as_dict() == {"id": 1}
    assert value.schema.name == "srv.shop.orders.Envelope"
    assert [f.name for f in value.schema.fields] == [
        "before", "after", "source", "op", "ts_ms", "transaction",
    ]  # fmt: skip
    after = value.get("after")
    assert after.schema.name == "srv.shop.orders.Value"
    assert after.as_dict() == CONVERTED
    assert (value.get("before"), value.get("op"), value.get("ts_ms")) == (None, "c", 123)
    source = value.get("source")
    assert source.schema.name == "io.debezium.connector.mysql.Source"
    assert source.as_dict() == {
        **dict.fromkeys(f.name for f in builder.source_schema().fields),
        **SOURCE,
        "version": builder.connector_version,
        "connector": "mysql",
        "name": "srv",
    }


def test_snapshot_read_is_op_r_with_after_only() -> None:
    events = _builder().change_events(ORDERS, "r", None, ROW, {**SOURCE, "snapshot": "true"}, 1)
    assert _shape(events) == [({"id": 1}, ("r", None, CONVERTED))]


def test_update_keeping_the_key_is_one_event_with_both_images() -> None:
    after = {**ROW, "qty": 3}
    events = _builder().change_events(ORDERS, "u", ROW, after, SOURCE, 1)
    assert _shape(events) == [({"id": 1}, ("u", CONVERTED, {**CONVERTED, "qty": 3}))]


def test_update_changing_the_key_is_delete_tombstone_create() -> None:
    after = {**ROW, "id": 2}
    events = _builder().change_events(ORDERS, "u", ROW, after, SOURCE, 1)
    assert _shape(events) == [
        ({"id": 1}, ("d", CONVERTED, None)),
        ({"id": 1}, None),
        ({"id": 2}, ("c", None, {**CONVERTED, "id": 2})),
    ]


def test_delete_is_followed_by_a_tombstone_unless_disabled() -> None:
    events = _builder().change_events(ORDERS, "d", ROW, None, SOURCE, 1)
    assert _shape(events) == [({"id": 1}, ("d", CONVERTED, None)), ({"id": 1}, None)]
    quiet = EventBuilder("srv", Filters.all(), tombstones_on_delete=False)
    assert _shape(quiet.change_events(ORDERS, "d", ROW, None, SOURCE, 1)) == [
        ({"id": 1}, ("d", CONVERTED, None))
    ]
    key_change = quiet.change_events(ORDERS, "u", ROW, {**ROW, "id": 2}, SOURCE, 1)
    assert [value.get("op") if value else None for _, value in key_change] == ["d", "c"]


def test_message_key_columns_choose_the_key() -> None:
    builder = _builder(**{"message.key.columns": r"shop\.orders:name,qty"})
    [(key, value)] = builder.change_events(ORDERS, "c", None, ROW, SOURCE, 1)
    _check(key, value)
    assert key is not None and key.as_dict() == {"name": "a", "qty": 2}
    key_field = key.schema.field("name")
    assert key_field is not None and key_field.schema.optional
    # A change of a message key column is a key change.
    events = builder.change_events(ORDERS, "u", ROW, {**ROW, "qty": 5}, SOURCE, 1)
    assert [value.get("op") if value else None for _, value in events] == ["d", None, "c"]


def test_a_table_without_primary_key_gives_records_without_key() -> None:
    builder = _builder()
    assert builder.schemas(NO_PK).key is None
    row = {"line": "x", "n": None}
    events = builder.change_events(NO_PK, "u", row, {"line": "y", "n": 1}, SOURCE, 1)
    assert _shape(events) == [(None, ("u", row, {"line": "y", "n": 1}))]
    assert _shape(builder.change_events(NO_PK, "d", row, None, SOURCE, 1)) == [
        (None, ("d", row, None)),
        (None, None),
    ]


def test_truncate_is_one_event_without_key_or_images() -> None:
    [(key, value)] = _builder().change_events(ORDERS, "t", None, None, SOURCE, 1)
    _check(key, value)
    assert key is None and value is not None
    assert (value.get("op"), value.get("before"), value.get("after")) == ("t", None, None)


def test_filters_shape_the_value_schema_and_values() -> None:
    builder = _builder(
        **{"column.exclude.list": r"shop\.orders\.ratio", "column.mask.with.2.chars": r".*\.name"}
    )
    [(_key, value)] = builder.change_events(ORDERS, "c", None, ROW, SOURCE, 1)
    assert value is not None
    _check(None, value)
    expected = {k: v for k, v in CONVERTED.items() if k != "ratio"}
    assert value.get("after").as_dict() == {**expected, "name": "**"}


def test_schemas_are_cached_per_table_object() -> None:
    builder = _builder()
    first = builder.schemas(ORDERS)
    assert builder.schemas(ORDERS) is first
    altered = Table("shop", "orders", (*ORDERS.columns, _column("note", 7, "text")), ("id",))
    second = builder.schemas(altered)
    assert second is not first and second.value.field("note") is not None
    assert first.value.field("note") is None
    assert first.value.field("id") is not None and not first.value.field("id").schema.optional
    updated = first.value.field("updated")
    assert updated is not None and updated.schema.type is Type.INT64


def test_transaction_block_is_carried() -> None:
    tx = {"id": "0-1-5", "total_order": 2, "data_collection_order": 1}
    [(_key, value)] = _builder().change_events(ORDERS, "c", None, ROW, SOURCE, 1, tx)
    assert value is not None
    _check(None, value)
    assert value.get("transaction").as_dict() == tx


def test_bad_input_is_refused() -> None:
    builder = _builder()
    with pytest.raises(ValueError, match="op"):
        builder.change_events(ORDERS, "x", None, ROW, SOURCE, 1)
    with pytest.raises(ValueError, match="row image"):
        builder.change_events(ORDERS, "c", None, None, SOURCE, 1)


def test_an_envelope_with_a_wrong_value_fails_validation() -> None:
    # The builder does not check values; schema.validate does (this test can fail).
    [(_key, value)] = _builder().change_events(ORDERS, "c", None, {**ROW, "qty": "2"}, SOURCE, 1)
    assert value is not None
    with pytest.raises(Exception, match="qty"):
        value.schema.validate(value)
