"""Snapshot records: `SnapshotRecords` (each row converted once, tuple rows, a shared
source block) gives the same records as `EventBuilder.change_events` with op ``r``
(pure: rows in the snapshot's tuple form, no server)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from test_mysql_events import NO_PK, ORDERS, WHEN, WHEN_US

from omconnect.connect.records import SourceRecord
from omconnect.connectors.mysql.events import EventBuilder
from omconnect.connectors.mysql.filters import Filters, parse_filters
from omconnect.connectors.mysql.offsets import BinlogOffset
from omconnect.connectors.mysql.snapshot import SnapshotRow
from omconnect.connectors.mysql.snapshot_records import SnapshotRecords
from omconnect.connectors.mysql.tables import Table

OFFSET = BinlogOffset("binlog.000003", 1234, "0-1-5", snapshot=True, ts_sec=1_795_326_861)
PARTITION = {"server": "srv"}
NAMES = ("id", "name", "qty", "price", "ratio", "updated")
TEXT_ROW = (1, "a", 2, Decimal("9.99"), 0.5, "2026-11-22 05:54:21.123456")  # DATETIME as text


def _records(builder: EventBuilder, rows: list[SnapshotRow]) -> list[SourceRecord]:
    maker = SnapshotRecords(builder, OFFSET, PARTITION, 7)
    return [maker.record(row) for row in rows]


def _expected(builder: EventBuilder, row: SnapshotRow, ts_ms: int) -> SourceRecord:
    """The record built the general way (`change_events`) from the row as a dict."""
    source = {
        "ts_ms": ts_ms,
        "snapshot": "last" if row.last else "true",
        "db": row.table.database,
        "table": row.table.name,
        "server_id": 7,
        "file": OFFSET.file,
        "pos": OFFSET.pos,
        "row": 0,
    }
    [(key, value)] = builder.change_events(row.table, "r", None, row.as_dict(), source, ts_ms)
    schemas = builder.schemas(row.table)
    return SourceRecord(
        builder.topic(row.table),
        None,
        schemas.key if key is not None else None,
        key,
        schemas.envelope,
        value,
        timestamp=ts_ms,
        source_partition=PARTITION,
        source_offset=OFFSET.as_offset() | {"snapshot": not row.last},
    )


def _same(builder: EventBuilder, rows: list[SnapshotRow]) -> list[SourceRecord]:
    records = _records(builder, rows)
    for row, record in zip(rows, records, strict=True):
        assert record.timestamp is not None
        assert record == _expected(builder, row, record.timestamp)
        if record.key_schema is not None:
            record.key_schema.validate(record.key)
        assert record.value_schema is not None
        record.value_schema.validate(record.value)
    return records


@pytest.mark.parametrize(
    "config",
    [
        {},
        {"message.key.columns": r"shop\.orders:name,qty"},
        {"column.exclude.list": r"shop\.orders\.id"},  # the key column is not in the value
        {"column.mask.with.3.chars": r"shop\.orders\.name"},
    ],
)
def test_records_are_those_of_change_events(config: dict[str, str]) -> None:
    builder = EventBuilder("srv", parse_filters(config) if config else Filters.all())
    rows = [
        SnapshotRow(ORDERS, NAMES, TEXT_ROW, False),
        SnapshotRow(ORDERS, NAMES, (2, None, None, None, None, WHEN), True),
    ]
    _same(builder, rows)


def test_a_datetime_read_as_text_is_the_same_micros() -> None:
    [record] = _records(
        EventBuilder("srv", Filters.all()), [SnapshotRow(ORDERS, NAMES, TEXT_ROW, True)]
    )
    assert record.value.get("after").get("updated") == WHEN_US
    assert record.key is not None and record.key.as_dict() == {"id": 1}


def test_the_last_row_ends_the_snapshot() -> None:
    rows = [SnapshotRow(ORDERS, NAMES, TEXT_ROW, False), SnapshotRow(ORDERS, NAMES, TEXT_ROW, True)]
    first, last = _records(EventBuilder("srv", Filters.all()), rows)
    assert first.source_offset["snapshot"] is True
    assert last.source_offset["snapshot"] is False
    assert first.value.get("source").get("snapshot") == "true"
    assert last.value.get("source").get("snapshot") == "last"


def test_a_table_without_key_and_columns_in_another_order() -> None:
    builder = EventBuilder("srv", Filters.all())
    rows = [SnapshotRow(NO_PK, ("n", "line"), (1, "x"), False)]
    [record] = _same(builder, rows)
    assert record.key is None and record.key_schema is None
    assert record.value.get("after").as_dict() == {"line": "x", "n": 1}


def test_a_table_read_again_after_ddl_gets_new_schemas() -> None:
    builder = EventBuilder("srv", Filters.all())
    altered = Table(ORDERS.database, ORDERS.name, ORDERS.columns[:2], ORDERS.primary_key)
    rows = [
        SnapshotRow(ORDERS, NAMES, TEXT_ROW, False),
        SnapshotRow(altered, ("id", "name"), (3, "c"), True),
    ]
    first, second = _same(builder, rows)
    assert second.value_schema is not first.value_schema
    assert second.value.get("after").as_dict() == {"id": 3, "name": "c"}
