"""The query-based SQL source on real databases (SQLite, PostgreSQL, MariaDB), its pure
parts (queries, offsets, schedule, table selection, config) and one pipeline through
the standalone runtime."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from omconnect.connect.records import SourceRecord, partition_key
from omconnect.connect.schema import (
    BOOLEAN,
    BYTES,
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
    time_schema,
    timestamp_schema,
)
from omconnect.connectors.sql.source import SqlSourceConnector
from omconnect.connectors.sql.source_config import Mode, load_source_config
from omconnect.connectors.sql.source_database import database_errors
from omconnect.connectors.sql.source_offsets import Position
from omconnect.connectors.sql.source_query import ModeColumns, build_select, compiled_sql
from omconnect.connectors.sql.source_schedule import PollSchedule
from omconnect.connectors.sql.source_tables import (
    TableId,
    decode_tables,
    encode_tables,
    group_tables,
    select_tables,
)
from omconnect.errors import ConfigError, FatalError, RetriableError
from omconnect.runtime.standalone import Standalone
from omconnect.testing.connectors import SourceConnectorConformance, SourceHarness

T0 = dt.datetime(2024, 5, 1, 12, 0, 0)
UTC = dt.UTC


# --- databases -----------------------------------------------------------------------


@dataclass
class Db:
    """A fresh database of one kind, with helpers to make and fill tables."""

    kind: str
    url: str
    engine: sa.Engine
    tables: dict[str, sa.Table] = field(default_factory=dict)

    def create(self, name: str, *columns: sa.Column[Any]) -> sa.Table:
        metadata = sa.MetaData()
        table = sa.Table(name, metadata, *columns)
        metadata.create_all(self.engine)
        self.tables[name] = table
        return table

    def items(self, name: str = "items") -> sa.Table:
        """The standard test table: id, name, ts (both NOT NULL), note."""
        return self.create(
            name,
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
            sa.Column("name", sa.String(40)),
            sa.Column("ts", sa.DateTime, nullable=False),
            sa.Column("note", sa.String(40)),
        )

    def insert(self, name: str, rows: list[dict[str, Any]]) -> None:
        with self.engine.begin() as connection:
            connection.execute(self.tables[name].insert(), rows)

    def update(self, name: str, row_id: int, **values: Any) -> None:
        table = self.tables[name]
        with self.engine.begin() as connection:
            connection.execute(table.update().where(table.c.id == row_id).values(**values))


def _unique(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex[:10]}"


def make_db(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    if kind == "sqlite":
        url = f"sqlite:///{tmp_path / _unique('source')}.db"
    elif kind == "postgres":
        server = request.getfixturevalue("postgres_server")
        name = _unique("sqlsource")
        admin = sa.create_engine(server.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.exec_driver_sql(f"CREATE DATABASE {name}")
        admin.dispose()
        url = server.url(name)
    else:
        server = request.getfixturevalue("mariadb_server")
        name = _unique("sqlsource")
        server.execute(f"CREATE DATABASE {name}")
        url = server.url(name)
    engine = sa.create_engine(url)
    try:
        yield Db(kind, url, engine)
    finally:
        engine.dispose()


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    """A fresh database on each engine."""
    yield from make_db(request.param, request, tmp_path)


@pytest.fixture
def sqlite_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    yield from make_db("sqlite", request, tmp_path)


@pytest.fixture
def postgres_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    yield from make_db("postgres", request, tmp_path)


@pytest.fixture
def mariadb_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Db]:
    yield from make_db("mariadb", request, tmp_path)


def config(db: Db, mode: str, **extra: str) -> dict[str, str]:
    return {
        "connection.url": db.url,
        "mode": mode,
        "incrementing.column.name": "id",
        "timestamp.column.name": "ts",
        "topic.prefix": "db-",
        "poll.interval.ms": "20",
        **{key.replace("_", "."): value for key, value in extra.items()},
    }


def rows(count: int, first_id: int = 1, ts: dt.datetime | None = None) -> list[dict[str, Any]]:
    """Rows with ids from ``first_id``; one second apart from T0 unless ``ts`` is given."""
    return [
        {
            "id": i,
            "name": f"row {i}",
            "ts": ts or T0 + dt.timedelta(seconds=i),
            "note": None,
        }
        for i in range(first_id, first_id + count)
    ]


def ids(records: list[SourceRecord]) -> list[int]:
    return [r.value.get("id") for r in records]


def field_schemas(record: SourceRecord) -> dict[str, Schema]:
    """Field name → schema of a record's struct value."""
    assert record.value_schema is not None
    return {f.name: f.schema for f in record.value_schema.fields}


def drain(harness: SourceHarness, expected: int) -> list[SourceRecord]:
    """Exactly the records there are: ``expected`` of them, then nothing more."""
    records = harness.poll_until(expected)
    records += harness.poll_until(1, timeout_s=0.3)
    return records


# --- conformance -----------------------------------------------------------------------


class _Conformance(SourceConnectorConformance):
    mode = "incrementing"

    @pytest.fixture
    def connector_class(self) -> type[SqlSourceConnector]:
        return SqlSourceConnector

    @pytest.fixture
    def source_config(self, db: Db) -> dict[str, str]:
        db.items()
        return config(db, self.mode)

    @pytest.fixture
    def write_source_data(self, db: Db) -> Callable[[int], None]:
        written = [0]

        def write(n: int) -> None:
            db.insert("items", rows(n, first_id=written[0] + 1))
            written[0] += n

        return write


class TestConformanceIncrementing(_Conformance):
    mode = "incrementing"


class TestConformanceTimestampIncrementing(_Conformance):
    mode = "timestamp+incrementing"


# --- modes -------------------------------------------------------------------------------


def test_bulk_reads_the_whole_table_every_poll(sqlite_db: Db) -> None:
    sqlite_db.items()
    sqlite_db.insert("items", rows(3))
    harness = SourceHarness(SqlSourceConnector, config(sqlite_db, "bulk"))
    try:
        first = harness.poll_until(6)
        sqlite_db.insert("items", rows(1, first_id=4))
        later = harness.poll_until(8)
    finally:
        harness.stop()
    assert ids(first[:6]) == [1, 2, 3, 1, 2, 3]
    assert [1, 2, 3, 4] in [ids(later[i : i + 4]) for i in range(len(later) - 3)]
    assert all(r.source_partition == {"table": "items"} for r in first)
    assert first[0].topic == "db-items" and first[0].key is None


def test_incrementing_reads_new_rows_only(db: Db) -> None:
    db.items()
    db.insert("items", rows(3))
    harness = SourceHarness(SqlSourceConnector, config(db, "incrementing"))
    try:
        first = drain(harness, 3)
        db.update("items", 2, note="changed")  # not seen: incrementing sees inserts only
        db.insert("items", rows(2, first_id=4))
        second = drain(harness, 2)
    finally:
        harness.stop()
    assert ids(first) == [1, 2, 3] and ids(second) == [4, 5]
    assert [r.source_offset for r in second] == [{"incrementing": 4}, {"incrementing": 5}]


def test_timestamp_mode_sees_updated_rows(sqlite_db: Db) -> None:
    sqlite_db.items()
    sqlite_db.insert("items", rows(3))
    harness = SourceHarness(SqlSourceConnector, config(sqlite_db, "timestamp"))
    try:
        first = drain(harness, 3)
        sqlite_db.update("items", 1, note="changed", ts=T0 + dt.timedelta(minutes=5))
        second = drain(harness, 1)
    finally:
        harness.stop()
    assert ids(first) == [1, 2, 3]
    assert ids(second) == [1] and second[0].value.get("note") == "changed"
    assert second[0].source_offset == {"timestamp": "2024-05-01T12:05:00"}


def test_timestamp_incrementing_sees_updates_and_rows_sharing_a_timestamp(db: Db) -> None:
    db.items()
    db.insert("items", rows(3, ts=T0))
    harness = SourceHarness(
        SqlSourceConnector, config(db, "timestamp+incrementing", batch_max_rows="2")
    )
    try:
        first = drain(harness, 3)
        # Same timestamp as the last row read, larger id: must come (no gap).
        db.insert("items", rows(2, first_id=4, ts=T0))
        db.update("items", 1, note="changed", ts=T0 + dt.timedelta(hours=1))
        second = drain(harness, 3)
    finally:
        harness.stop()
    assert ids(first) == [1, 2, 3]
    assert ids(second) == [4, 5, 1]
    assert second[-1].value.get("note") == "changed"
    last = Position.from_offset(Mode.TIMESTAMP_INCREMENTING, second[-1].source_offset)
    assert last == Position(T0 + dt.timedelta(hours=1), 1)


def test_several_timestamp_columns_are_coalesced(sqlite_db: Db) -> None:
    sqlite_db.create(
        "edits",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("modified", sa.DateTime, nullable=True),
        sa.Column("created", sa.DateTime, nullable=False),
    )
    sqlite_db.insert(
        "edits",
        [
            {"id": 1, "modified": None, "created": T0},
            {"id": 2, "modified": T0 + dt.timedelta(hours=2), "created": T0},
            {"id": 3, "modified": None, "created": T0 + dt.timedelta(hours=1)},
        ],
    )
    harness = SourceHarness(
        SqlSourceConnector,
        config(sqlite_db, "timestamp", timestamp_column_name="modified,created"),
    )
    try:
        records = drain(harness, 3)
    finally:
        harness.stop()
    assert ids(records) == [1, 3, 2]  # ordered by COALESCE(modified, created)
    assert records[-1].source_offset == {"timestamp": "2024-05-01T14:00:00"}


def test_timestamp_delay_holds_back_recent_rows(db: Db) -> None:
    db.items()
    with db.engine.connect() as connection:
        now = connection.execute(sa.select(sa.func.current_timestamp())).scalar_one()
    now = now.replace(tzinfo=None, microsecond=0)  # the naive column keeps session time
    db.insert(
        "items",
        [
            {"id": 1, "name": "old", "ts": now - dt.timedelta(hours=3), "note": None},
            {"id": 2, "name": "recent", "ts": now - dt.timedelta(minutes=10), "note": None},
        ],
    )
    delay = str(60 * 60 * 1000)  # one hour
    harness = SourceHarness(
        SqlSourceConnector,
        config(db, "timestamp+incrementing", timestamp_delay_interval_ms=delay),
    )
    try:
        records = drain(harness, 1)
    finally:
        harness.stop()
    assert [r.value.get("name") for r in records] == ["old"]


# --- resume ------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["incrementing", "timestamp+incrementing"])
def test_restart_resumes_after_the_last_committed_row(db: Db, mode: str) -> None:
    db.items()
    db.insert("items", rows(6, ts=T0))  # all one timestamp: only the id tells them apart
    harness = SourceHarness(SqlSourceConnector, config(db, mode, batch_max_rows="2"))
    try:
        read = harness.poll_until(4)
        assert ids(read) == [1, 2, 3, 4]
        # Only the first two were acknowledged when the worker died.
        committed = read[1]
        harness.offsets.stored = {
            partition_key(committed.source_partition): (
                committed.source_partition,
                committed.source_offset,
            )
        }
        harness.restart()
        db.insert("items", rows(2, first_id=7, ts=T0))
        again = drain(harness, 6)
    finally:
        harness.stop()
    assert ids(again) == [3, 4, 5, 6, 7, 8]  # no gap, nothing before the commit


# --- custom query, tables, tasks -------------------------------------------------------


def test_custom_query_is_filtered_by_the_mode(db: Db) -> None:
    db.items()
    db.insert("items", rows(4))
    db.update("items", 2, note="skip")
    query = "SELECT id, name, ts FROM items WHERE note IS NULL OR note <> 'skip'"
    source = config(
        db, "timestamp+incrementing", query=query, topic_prefix="picked", batch_max_rows="3"
    )
    harness = SourceHarness(SqlSourceConnector, source)
    try:
        first = drain(harness, 3)
        harness.restart()
        db.insert("items", rows(1, first_id=5))
        second = drain(harness, 1)
    finally:
        harness.stop()
    assert ids(first) == [1, 3, 4] and ids(second) == [5]
    record = first[0]
    assert record.topic == "picked"
    assert record.source_partition == {"query": query}
    assert list(field_schemas(record)) == ["id", "name", "ts"]
    assert record.value.get("name") == "row 1"


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({}, ["alpha", "beta", "gamma"]),
        ({"table.include.list": "alpha,gamma"}, ["alpha", "gamma"]),
        ({"table.whitelist": "beta"}, ["beta"]),
        ({"table.exclude.list": "beta"}, ["alpha", "gamma"]),
        ({"table.blacklist": "alpha, beta"}, ["gamma"]),
    ],
)
def test_tables_are_included_and_excluded(
    sqlite_db: Db, keys: dict[str, str], expected: list[str]
) -> None:
    for number, name in enumerate(["alpha", "beta", "gamma"]):
        sqlite_db.items(name)
        sqlite_db.insert(name, rows(1, first_id=number))
    harness = SourceHarness(SqlSourceConnector, {**config(sqlite_db, "incrementing"), **keys})
    try:
        records = drain(harness, len(expected))
    finally:
        harness.stop()
    assert sorted(r.topic for r in records) == [f"db-{name}" for name in expected]


def test_tables_are_split_over_the_tasks(sqlite_db: Db) -> None:
    for name in ["t1", "t2", "t3", "t4", "t5"]:
        sqlite_db.items(name)
    connector = SqlSourceConnector()
    connector.start(config(sqlite_db, "incrementing"))
    tasks = connector.task_configs(2)
    single = connector.task_configs(1)
    connector.stop()
    groups = [[t.name for t in decode_tables(task["tables"])] for task in tasks]
    assert groups == [["t1", "t2", "t3"], ["t4", "t5"]]
    assert len(single) == 1 and len(decode_tables(single[0]["tables"])) == 5
    assert tasks[0]["connection.url"] == sqlite_db.url


class RecordingContext:
    """A `ConnectorContext` that records reconfiguration requests."""

    def __init__(self) -> None:
        self.reconfigured = threading.Event()

    def request_task_reconfiguration(self) -> None:
        self.reconfigured.set()

    def raise_error(self, exc: Exception) -> None:
        raise AssertionError(f"the connector failed: {exc!r}")


def test_new_and_dropped_tables_replan_the_tasks(sqlite_db: Db) -> None:
    sqlite_db.items("first")
    context = RecordingContext()
    connector = SqlSourceConnector()
    connector.initialize(context)
    connector.start(config(sqlite_db, "incrementing", table_poll_interval_ms="20"))
    try:
        assert [decode_tables(t["tables"]) for t in connector.task_configs(2)] == [
            [TableId(None, "first")]
        ]
        sqlite_db.items("second")
        assert context.reconfigured.wait(10), "a new table must re-plan the tasks"
        assert [decode_tables(t["tables"]) for t in connector.task_configs(2)] == [
            [TableId(None, "first")],
            [TableId(None, "second")],
        ]
        context.reconfigured.clear()
        sqlite_db.tables["first"].drop(sqlite_db.engine)
        assert context.reconfigured.wait(10), "a dropped table must re-plan the tasks"
        assert [decode_tables(t["tables"]) for t in connector.task_configs(2)] == [
            [TableId(None, "second")]
        ]
    finally:
        connector.stop()


def test_a_query_runs_in_one_task(sqlite_db: Db) -> None:
    sqlite_db.items()
    connector = SqlSourceConnector()
    connector.start(config(sqlite_db, "bulk", query="SELECT * FROM items", topic_prefix="all"))
    assert len(connector.task_configs(4)) == 1


# --- types -------------------------------------------------------------------------------


def test_postgres_types_map_to_connect_schemas(postgres_db: Db) -> None:
    db = postgres_db
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            """CREATE TABLE typed (
                id BIGINT NOT NULL, small SMALLINT, normal INTEGER NOT NULL,
                price NUMERIC(12, 3), free NUMERIC, r REAL, d DOUBLE PRECISION,
                flag BOOLEAN, name VARCHAR(10), body TEXT, raw BYTEA,
                day DATE, at TIME, ts TIMESTAMP NOT NULL, tstz TIMESTAMPTZ, u UUID
            )"""
        )
        connection.exec_driver_sql(
            """INSERT INTO typed VALUES (
                9000000000, -3, 7, 12.345, 1.5, 0.5, 2.25, true, 'hé', 'text', '\\x0001',
                '2024-02-29', '13:14:15', '2024-05-01 12:00:00',
                '2024-05-01 12:00:00+02', 'a8098c1a-f86e-11da-bd1a-00112444be1e'
            )"""
        )
    record = read_one(db, "typed")
    schemas = field_schemas(record)
    assert schemas == {
        "id": INT64,
        "small": INT16.as_optional(),
        "normal": INT32,
        "price": decimal_schema(3, 12, optional=True),
        "free": STRING.as_optional(),
        "r": FLOAT32.as_optional(),
        "d": FLOAT64.as_optional(),
        "flag": BOOLEAN.as_optional(),
        "name": STRING.as_optional(),
        "body": STRING.as_optional(),
        "raw": BYTES.as_optional(),
        "day": date_schema(optional=True),
        "at": time_schema(optional=True),
        "ts": timestamp_schema(),
        "tstz": timestamp_schema(optional=True),
        "u": STRING.as_optional(),
    }
    assert record.value.as_dict() == {
        "id": 9000000000,
        "small": -3,
        "normal": 7,
        "price": decimal.Decimal("12.345"),
        "free": "1.5",
        "r": 0.5,
        "d": 2.25,
        "flag": True,
        "name": "hé",
        "body": "text",
        "raw": b"\x00\x01",
        "day": dt.date(2024, 2, 29),
        "at": dt.time(13, 14, 15),
        "ts": dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
        "tstz": dt.datetime(2024, 5, 1, 10, 0, tzinfo=UTC),
        "u": "a8098c1a-f86e-11da-bd1a-00112444be1e",
    }


def test_mariadb_types_map_to_connect_schemas(mariadb_db: Db) -> None:
    db = mariadb_db
    with db.engine.begin() as connection:
        connection.exec_driver_sql(
            """CREATE TABLE typed (
                id INT UNSIGNED NOT NULL, tiny TINYINT, small SMALLINT UNSIGNED,
                big BIGINT, ubig BIGINT UNSIGNED, price DECIMAL(8, 2), f FLOAT, d DOUBLE,
                name VARCHAR(10), kind ENUM('a', 'b'), raw VARBINARY(4), day DATE,
                at TIME, ts DATETIME NOT NULL, js JSON
            )"""
        )
        connection.exec_driver_sql(
            """INSERT INTO typed VALUES (
                4000000000, -5, 60000, -9000000000, 18446744073709551615, 123456.78,
                0.5, 2.25, 'hé', 'b', X'0001', '2024-02-29', '13:14:15',
                '2024-05-01 12:00:00', '{"a": 1}'
            )"""
        )
    record = read_one(db, "typed")
    schemas = field_schemas(record)
    assert schemas == {
        "id": INT64,
        "tiny": INT8.as_optional(),
        "small": INT32.as_optional(),
        "big": INT64.as_optional(),
        "ubig": decimal_schema(0, 20, optional=True),
        "price": decimal_schema(2, 8, optional=True),
        "f": FLOAT32.as_optional(),
        "d": FLOAT64.as_optional(),
        "name": STRING.as_optional(),
        "kind": STRING.as_optional(),
        "raw": BYTES.as_optional(),
        "day": date_schema(optional=True),
        "at": time_schema(optional=True),
        "ts": timestamp_schema(),
        "js": STRING.as_optional(),
    }
    value = record.value.as_dict()
    assert value == {
        **value,
        "id": 4000000000,
        "tiny": -5,
        "small": 60000,
        "big": -9000000000,
        "ubig": decimal.Decimal(18446744073709551615),
        "price": decimal.Decimal("123456.78"),
        "f": 0.5,
        "d": 2.25,
        "name": "hé",
        "kind": "b",
        "raw": b"\x00\x01",
        "day": dt.date(2024, 2, 29),
        "at": dt.time(13, 14, 15),
        "ts": dt.datetime(2024, 5, 1, 12, 0, tzinfo=UTC),
    }
    assert json.loads(value["js"]) == {"a": 1}


def test_sqlite_types_map_to_connect_schemas(sqlite_db: Db) -> None:
    with sqlite_db.engine.begin() as connection:
        connection.exec_driver_sql(
            """CREATE TABLE typed (id INTEGER NOT NULL, price DECIMAL(6, 2), r REAL,
               flag BOOLEAN, name TEXT, raw BLOB, day DATE, ts DATETIME)"""
        )
        connection.exec_driver_sql(
            """INSERT INTO typed VALUES (1, 12.5, 0.25, 1, 'x', X'00FF', '2024-02-29',
               '2024-05-01 12:00:00.000000')"""
        )
    record = read_one(sqlite_db, "typed", **{"db.timezone": "Europe/Paris"})
    schemas = field_schemas(record)
    assert schemas == {
        "id": INT64,
        "price": decimal_schema(2, 6, optional=True),
        "r": FLOAT64.as_optional(),
        "flag": BOOLEAN.as_optional(),
        "name": STRING.as_optional(),
        "raw": BYTES.as_optional(),
        "day": date_schema(optional=True),
        "ts": timestamp_schema(optional=True),
    }
    assert record.value.as_dict() == {
        "id": 1,
        "price": decimal.Decimal("12.50"),
        "r": 0.25,
        "flag": True,
        "name": "x",
        "raw": b"\x00\xff",
        "day": dt.date(2024, 2, 29),
        "ts": dt.datetime(2024, 5, 1, 10, 0, tzinfo=UTC),  # 12:00 in Paris (CEST)
    }


def read_one(db: Db, table: str, **extra: str) -> SourceRecord:
    harness = SourceHarness(SqlSourceConnector, {**config(db, "bulk"), **extra})
    try:
        records = harness.poll_until(1)
    finally:
        harness.stop()
    assert isinstance(records[0].value, Struct)
    return records[0]


# --- config ------------------------------------------------------------------------------


def error_key(values: dict[str, str]) -> str:
    with pytest.raises(ConfigError) as error:
        load_source_config(values)
    return error.value.key


BASE = {"connection.url": "sqlite:///x.db", "mode": "bulk", "topic.prefix": "p-"}


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"mode": "incrementing"}, "incrementing.column.name"),
        ({"mode": "timestamp"}, "timestamp.column.name"),
        (
            {"mode": "timestamp+incrementing", "timestamp.column.name": "ts"},
            "incrementing.column.name",
        ),
        ({"mode": "sometimes"}, "mode"),
        ({"connection.url": "not a url"}, "connection.url"),
        ({"poll.cron": "every day"}, "poll.cron"),
        ({"poll.interval.ms": "0"}, "poll.interval.ms"),
        ({"batch.max.rows": "-1"}, "batch.max.rows"),
        ({"db.timezone": "Mars/Olympus"}, "db.timezone"),
        ({"table.types": "TABLE,INDEX"}, "table.types"),
        ({"table.whitelist": "a", "table.include.list": "b"}, "table.whitelist"),
        ({"table.include.list": "a", "table.exclude.list": "b"}, "table.exclude.list"),
        ({"query": "SELECT 1", "table.include.list": "a"}, "query"),
        ({"query": "SELECT 1", "topic.prefix": ""}, "topic.prefix"),
    ],
)
def test_config_errors_name_the_key(changes: dict[str, str], key: str) -> None:
    values = {**BASE, **changes}
    assert error_key(values) == key
    assert key in {e.key for e in SqlSourceConnector().validate(values)}


def test_required_keys_are_named() -> None:
    keys = {e.key for e in SqlSourceConnector().validate({})}
    assert {"connection.url", "mode", "topic.prefix"} <= keys


def test_a_table_without_the_mode_column_is_refused_at_start(sqlite_db: Db) -> None:
    sqlite_db.items()
    connector = SqlSourceConnector()
    with pytest.raises(ConfigError) as error:
        connector.start(config(sqlite_db, "incrementing", incrementing_column_name="number"))
    assert error.value.key == "incrementing.column.name" and "number" in error.value.reason


def test_nullable_mode_columns_need_validate_non_null_off(sqlite_db: Db) -> None:
    sqlite_db.create(
        "loose",
        sa.Column("id", sa.Integer, nullable=True),
        sa.Column("ts", sa.DateTime, nullable=True),
    )
    sqlite_db.insert("loose", [{"id": 1, "ts": T0}])
    with pytest.raises(ConfigError) as error:
        SqlSourceConnector().start(config(sqlite_db, "timestamp"))
    assert error.value.key == "timestamp.column.name"
    harness = SourceHarness(
        SqlSourceConnector, config(sqlite_db, "timestamp", validate_non_null="false")
    )
    try:
        assert ids(harness.poll_until(1)) == [1]
    finally:
        harness.stop()


def test_a_table_dropped_while_running_fails_the_task(sqlite_db: Db) -> None:
    table = sqlite_db.items()
    harness = SourceHarness(SqlSourceConnector, config(sqlite_db, "incrementing"))
    try:
        table.drop(sqlite_db.engine)
        with pytest.raises(FatalError, match="items"):
            harness.task.poll()
    finally:
        harness.stop()


# --- pure parts --------------------------------------------------------------------------

_TABLE = sa.Table(
    "orders",
    sa.MetaData(),
    sa.Column("id", sa.Integer),
    sa.Column("ts", sa.DateTime),
    sa.Column("ts2", sa.DateTime),
)
_UPPER = dt.datetime(2025, 1, 1)


@pytest.mark.parametrize(
    ("mode", "position", "where"),
    [
        (Mode.BULK, Position(), ""),
        (Mode.INCREMENTING, Position(), " ORDER BY orders.id"),
        (Mode.INCREMENTING, Position(incrementing=7), " WHERE orders.id > 7 ORDER BY orders.id"),
        (
            Mode.TIMESTAMP,
            Position(),
            " WHERE orders.ts < '2025-01-01 00:00:00' ORDER BY orders.ts",
        ),
        (
            Mode.TIMESTAMP,
            Position(T0),
            " WHERE orders.ts > '2024-05-01 12:00:00' AND orders.ts < '2025-01-01 00:00:00'"
            " ORDER BY orders.ts",
        ),
        (
            Mode.TIMESTAMP_INCREMENTING,
            Position(T0, 7),
            " WHERE (orders.ts > '2024-05-01 12:00:00' OR orders.ts = '2024-05-01 12:00:00'"
            " AND orders.id > 7) AND orders.ts < '2025-01-01 00:00:00'"
            " ORDER BY orders.ts, orders.id",
        ),
        (
            Mode.TIMESTAMP_INCREMENTING,
            Position(T0, None),
            " WHERE orders.ts >= '2024-05-01 12:00:00' AND orders.ts < '2025-01-01 00:00:00'"
            " ORDER BY orders.ts, orders.id",
        ),
    ],
)
def test_select_per_mode(mode: Mode, position: Position, where: str) -> None:
    statement = build_select(_TABLE, ModeColumns(mode, "id", ("ts",)), position, _UPPER)
    sql = " ".join(compiled_sql(statement, postgresql.dialect()).split())
    assert sql == "SELECT orders.id, orders.ts, orders.ts2 FROM orders" + where


def test_select_coalesces_timestamps_and_wraps_a_custom_query() -> None:
    columns = ModeColumns(Mode.TIMESTAMP, None, ("ts", "ts2"))
    statement = build_select("SELECT * FROM orders WHERE x = 'a:b';", columns, Position(T0), None)
    sql = " ".join(compiled_sql(statement, mysql.dialect()).split())
    assert sql == (
        "SELECT * FROM (SELECT * FROM orders WHERE x = 'a:b') AS omconnect_query"
        " WHERE coalesce(ts, ts2) > '2024-05-01 12:00:00' ORDER BY coalesce(ts, ts2)"
    )


def test_select_binds_values_as_parameters() -> None:
    statement = build_select(
        _TABLE, ModeColumns(Mode.INCREMENTING, "id"), Position(incrementing=3), None
    )
    compiled = statement.compile(dialect=sqlite.dialect())
    assert "3" not in str(compiled) and list(compiled.params.values()) == [3]


def test_select_names_a_missing_mode_column() -> None:
    with pytest.raises(KeyError, match="number"):
        build_select(_TABLE, ModeColumns(Mode.INCREMENTING, "number"), Position(), None)


def test_positions_round_trip_through_offsets() -> None:
    aware = dt.datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    for mode, position in [
        (Mode.INCREMENTING, Position(None, 42)),
        (Mode.TIMESTAMP, Position(T0, None)),
        (Mode.TIMESTAMP_INCREMENTING, Position(aware, -1)),
    ]:
        offset = position.to_offset(mode)
        assert Position.from_offset(mode, json.loads(json.dumps(offset))) == position
    assert Position(T0, 5).to_offset(Mode.BULK) == {}
    # A mode switch keeps only what the new mode uses.
    stored = {"timestamp": "2024-05-01T12:00:00", "incrementing": 9}
    assert Position.from_offset(Mode.INCREMENTING, stored) == Position(None, 9)
    assert Position.from_offset(Mode.TIMESTAMP, stored) == Position(T0, None)
    assert Position.from_offset(Mode.INCREMENTING, {"incrementing": "9"}) == Position()


def test_position_after_a_row() -> None:
    start = Position(T0, 1)
    later = T0 + dt.timedelta(seconds=1)
    mode = Mode.TIMESTAMP_INCREMENTING
    assert start.after_row(mode, [None, later], 2) == Position(later, 2)  # COALESCE order
    assert start.after_row(mode, ["2024-05-01 12:00:01"], decimal.Decimal(3)) == Position(later, 3)
    assert start.after_row(mode, [None], None) == start  # nulls keep the position
    assert start.after_row(Mode.INCREMENTING, [later], 5) == Position(T0, 5)


def test_cron_schedule_computes_the_next_poll_time() -> None:
    schedule = PollSchedule(dt.timedelta(seconds=5), "*/15 * * * *")
    now = dt.datetime(2026, 1, 1, 10, 7, 30, tzinfo=UTC)
    assert schedule.next_poll(None, now) == dt.datetime(2026, 1, 1, 10, 15, tzinfo=UTC)
    fired = dt.datetime(2026, 1, 1, 10, 15, tzinfo=UTC)
    # Exactly at a fire time: that one when never polled, the following one after a poll.
    assert schedule.next_poll(None, fired) == fired
    assert schedule.next_poll(fired, fired) == dt.datetime(2026, 1, 1, 10, 30, tzinfo=UTC)
    # A poll that overran two fire times: the missed ones are skipped.
    late = dt.datetime(2026, 1, 1, 10, 47, tzinfo=UTC)
    assert schedule.next_poll(fired, late) == dt.datetime(2026, 1, 1, 11, 0, tzinfo=UTC)
    nightly = PollSchedule(dt.timedelta(seconds=5), "30 2 * * mon-fri")
    friday = dt.datetime(2026, 1, 2, 3, 0, tzinfo=UTC)  # a Friday, after 02:30
    assert nightly.next_poll(None, friday) == dt.datetime(2026, 1, 5, 2, 30, tzinfo=UTC)


def test_interval_schedule_counts_from_the_previous_poll_start() -> None:
    schedule = PollSchedule(dt.timedelta(seconds=5))
    now = dt.datetime(2026, 1, 1, 10, 0, 0, tzinfo=UTC)
    assert schedule.next_poll(None, now) == now
    started = now - dt.timedelta(seconds=2)
    assert schedule.next_poll(started, now) == now + dt.timedelta(seconds=3)
    assert schedule.next_poll(started - dt.timedelta(minutes=1), now) < now  # overran: at once


def test_cron_poll_waits_for_the_fire_time(sqlite_db: Db) -> None:
    sqlite_db.items()
    sqlite_db.insert("items", rows(1))
    # 29 February, 00:00 of a far year: the task must not poll before.
    harness = SourceHarness(
        SqlSourceConnector, config(sqlite_db, "incrementing", poll_cron="0 0 29 2 *")
    )
    try:
        assert harness.poll_until(1, timeout_s=0.3) == []
    finally:
        harness.stop()


def test_table_selection_and_grouping() -> None:
    tables = [TableId(None, n) for n in ["b", "a", "c"]] + [TableId("sales", "a")]
    assert select_tables(tables, [], []) == [
        TableId(None, "a"),
        TableId(None, "b"),
        TableId(None, "c"),
        TableId("sales", "a"),
    ]
    assert select_tables(tables, ["a"], []) == [TableId(None, "a")]
    assert select_tables(tables, ["public.a", "sales.a"], [], "public") == [
        TableId(None, "a"),
        TableId("sales", "a"),
    ]
    assert select_tables(tables, [], ["a", "sales.a"]) == [TableId(None, "b"), TableId(None, "c")]
    seven = [TableId(None, str(i)) for i in range(7)]
    assert [len(g) for g in group_tables(seven, 3)] == [3, 2, 2]
    assert [len(g) for g in group_tables(seven[:2], 5)] == [1, 1]
    assert group_tables([], 3) == []
    assert decode_tables(encode_tables(tables)) == tables
    with pytest.raises(ValueError):
        decode_tables('[["a"]]')


# --- through the runtime -----------------------------------------------------------------


def consume(access_point: Any, topic: str, count: int, group: str) -> list[dict[str, Any]]:
    """``count`` JSON values of ``topic`` from the earliest, then whatever else is there."""
    values: list[dict[str, Any]] = []
    with access_point.create_pull_consumer(group, [topic], start_from="earliest") as consumer:
        deadline = time.monotonic() + 30
        while len(values) < count and time.monotonic() < deadline:
            values += [json.loads(m.body) for m in consumer.batch_receive(100, timeout_ms=500)]
        values += [json.loads(m.body) for m in consumer.batch_receive(100, timeout_ms=500)]
    return values


def test_pipeline_through_the_standalone_runtime_resumes_after_a_restart(
    sqlite_db: Db, tmp_path: Path
) -> None:
    sqlite_db.items()
    sqlite_db.insert("items", rows(5))
    worker = {
        "data.dir": str(tmp_path / "data"),
        "value.converter": "json",
        "value.converter.schemas.enable": "false",
        "offset.flush.interval.ms": "100",
    }
    source = {
        **config(sqlite_db, "timestamp+incrementing", batch_max_rows="2"),
        "connector.class": "omconnect.connectors.sql.source:SqlSourceConnector",
    }
    standalone = Standalone(worker)
    try:
        standalone.access_point.resources.create_queue("db-items", 1)
        standalone.put_connector_config("items-source", source)
        first = consume(standalone.access_point, "db-items", 5, "check-1")
    finally:
        standalone.stop()  # graceful: the offsets of what was sent are committed
    sqlite_db.insert("items", rows(3, first_id=6))
    standalone = Standalone(worker)  # the stored connector starts again
    try:
        everything = consume(standalone.access_point, "db-items", 8, "check-2")
    finally:
        standalone.stop()
    assert [v["id"] for v in first] == [1, 2, 3, 4, 5]
    assert [v["id"] for v in everything] == [1, 2, 3, 4, 5, 6, 7, 8]  # no row twice
    # The Timestamp field as the JSON converter writes it: epoch ms (12:00:01 UTC).
    assert everything[0] == {"id": 1, "name": "row 1", "ts": 1714564801000, "note": None}


def test_tables_of_another_schema_are_read_when_named(postgres_db: Db) -> None:
    with postgres_db.engine.begin() as connection:
        connection.exec_driver_sql("CREATE SCHEMA sales")
        connection.exec_driver_sql("CREATE TABLE sales.orders (id INT NOT NULL, what TEXT)")
        connection.exec_driver_sql("CREATE TABLE orders (id INT NOT NULL, what TEXT)")
        connection.exec_driver_sql("INSERT INTO sales.orders VALUES (1, 'sold')")
        connection.exec_driver_sql("INSERT INTO orders VALUES (1, 'plain')")
    source = config(postgres_db, "incrementing", table_include_list="sales.orders")
    harness = SourceHarness(SqlSourceConnector, source)
    try:
        records = drain(harness, 1)
    finally:
        harness.stop()
    assert [r.value.get("what") for r in records] == ["sold"]
    assert records[0].source_partition == {"table": "sales.orders"}
    assert records[0].topic == "db-orders"


def test_database_errors_are_classified() -> None:
    lost = sa.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection"))
    with (
        pytest.raises(RetriableError, match="server closed the connection"),
        database_errors("reading table t"),
    ):
        raise lost
    bad = sa.exc.ProgrammingError("SELEC 1", {}, Exception("syntax error at SELEC"))
    with (
        pytest.raises(FatalError, match="reading table t: syntax error"),
        database_errors("reading table t"),
    ):
        raise bad
