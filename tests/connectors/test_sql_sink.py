"""The SQL sink on real SQLite, PostgreSQL and MariaDB: change events with every column
type of docs/connectors/cdc-events.md, upsert/update/delete, replay, auto.evolve,
schemaless records, bad records, config errors, and one run through the runtime."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from omconnect.connect.config import parse_config
from omconnect.connect.connector import ErrantRecordReporter, TopicPartition
from omconnect.connect.records import SinkRecord
from omconnect.connect.schema import (
    BOOLEAN,
    BYTES,
    FLOAT32,
    FLOAT64,
    INT8,
    INT16,
    INT32,
    INT64,
    OPTIONAL_STRING,
    STRING,
    Schema,
    Struct,
    Type,
    decimal_schema,
    struct_schema,
)
from omconnect.connectors.sql import dialects
from omconnect.connectors.sql.dialects import column_type, rules_for, upsert_statement
from omconnect.connectors.sql.sink import SqlSinkConnector, SqlSinkTask
from omconnect.connectors.sql.sink_changes import Change, Op
from omconnect.connectors.sql.sink_config import SqlSinkConfig, table_name
from omconnect.connectors.sql.sink_plan import plan_batch
from omconnect.connectors.sql.sink_values import to_db_value
from omconnect.errors import ConfigError, FatalError, RecordError, RetriableError
from omconnect.testing.connectors import SinkConnectorConformance

# --- schemas and records -----------------------------------------------------------


def named(type_: Type, name: str, optional: bool = False, **params: str) -> Schema:
    return Schema(type_, optional, name=name, parameters=tuple(params.items()))


KEY = struct_schema([("id", INT32)], name="srv.inv.items.Key")
ROW = struct_schema(
    [
        ("id", INT32),
        ("tiny", INT8),
        ("small", INT16),
        ("medium", INT32),
        ("big", INT64),
        ("ubig", decimal_schema(0)),
        ("price", decimal_schema(2, precision=10)),
        ("f32", FLOAT32),
        ("f64", FLOAT64),
        ("flag", BOOLEAN),
        ("bits", named(Type.BYTES, dialects.DBZ_BITS, length="12")),
        ("day", named(Type.INT32, dialects.DBZ_DATE)),
        ("clock", named(Type.INT64, dialects.DBZ_MICRO_TIME)),
        ("wall", named(Type.INT64, dialects.DBZ_MICRO_TIMESTAMP)),
        ("zoned", named(Type.STRING, dialects.DBZ_ZONED_TIMESTAMP)),
        ("yr", named(Type.INT32, dialects.DBZ_YEAR)),
        ("name", STRING),
        ("blob", BYTES),
        ("color", named(Type.STRING, dialects.DBZ_ENUM, allowed="red,green")),
        ("tags", named(Type.STRING, dialects.DBZ_ENUM_SET, allowed="a,b,c")),
        ("doc", named(Type.STRING, dialects.DBZ_JSON)),
        ("note", OPTIONAL_STRING),
    ],
    name="srv.inv.items.Value",
    optional=True,  # as the envelope's before/after
)
SOURCE = struct_schema(
    [("connector", STRING), ("name", STRING), ("db", STRING), ("table", OPTIONAL_STRING)],
    name="io.debezium.connector.mysql.Source",
)


def envelope_schema(row: Schema) -> Schema:
    return struct_schema(
        [
            ("before", row),
            ("after", row),
            ("source", SOURCE),
            ("op", STRING),
            ("ts_ms", INT64.as_optional()),
        ],
        name="srv.inv.items.Envelope",
    )


ENVELOPE = envelope_schema(ROW)

WALL = dt.datetime(2026, 11, 22, 5, 54, 21, 123456)
SAMPLE: dict[str, Any] = {
    "tiny": -128,
    "small": 32767,
    "medium": -8388608,
    "big": 2**63 - 1,
    "ubig": decimal.Decimal(2**64 - 1),
    "price": decimal.Decimal("12345678.90"),
    "f32": 1.5,
    "f64": 2.25,
    "flag": True,
    "bits": b"\x0a\xbc",
    "day": (dt.date(2024, 2, 29) - dt.date(1970, 1, 1)).days,
    "clock": ((13 * 60 + 45) * 60 + 30) * 1_000_000 + 123456,
    "wall": (WALL - dt.datetime(1970, 1, 1)) // dt.timedelta(microseconds=1),
    "zoned": "2026-11-22T05:54:21.123456Z",
    "yr": 2026,
    "name": "ünïcode ✓",
    "blob": b"\x00\xff",
    "color": "green",
    "tags": "a,c",
    "doc": '{"a": [1, 2], "b": null}',
    "note": None,
}
# What each column must read back as (after `normalize`).
EXPECTED: dict[str, Any] = {
    **SAMPLE,
    "day": dt.date(2024, 2, 29),
    "clock": dt.time(13, 45, 30, 123456),
    "wall": WALL,
    "zoned": WALL,
    "doc": {"a": [1, 2], "b": None},
}


def row(id_: int, **changes: Any) -> Struct:
    return Struct(ROW, {"id": id_, **SAMPLE, **changes})


def event(
    op: str,
    id_: int,
    before: Struct | None = None,
    after: Struct | None = None,
    topic: str = "srv.inv.items",
    offset: int = 0,
    envelope: Schema = ENVELOPE,
) -> SinkRecord:
    source = Struct(SOURCE, {"connector": "mysql", "name": "srv", "db": "inv", "table": "items"})
    value = Struct(
        envelope, {"before": before, "after": after, "source": source, "op": op, "ts_ms": 1}
    )
    key = Struct(KEY, {"id": id_})
    return SinkRecord(topic, 0, KEY, key, envelope, value, offset=offset)


def tombstone(id_: int, topic: str = "srv.inv.items", offset: int = 0) -> SinkRecord:
    return SinkRecord(topic, 0, KEY, Struct(KEY, {"id": id_}), None, None, offset=offset)


def numbered(records: Sequence[SinkRecord]) -> list[SinkRecord]:
    """``records`` with offsets 0, 1, 2, ..."""
    return [r.new_record(offset=i) for i, r in enumerate(records)]


# --- targets -------------------------------------------------------------------------


@dataclass
class Target:
    """One test's own database."""

    kind: str
    url: str

    def engine(self) -> sa.Engine:
        return sa.create_engine(self.url)

    def rows(self, table: str) -> list[dict[str, Any]]:
        """Every row of ``table`` ordered by its first column, values normalized."""
        engine = self.engine()
        try:
            with engine.connect() as connection:
                reflected = sa.Table(table, sa.MetaData(), autoload_with=connection)
                query = sa.select(reflected).order_by(*reflected.primary_key.columns or [])
                query = query.order_by(next(iter(reflected.columns)))
                return [
                    {k: normalize(v) for k, v in r._mapping.items()}
                    for r in connection.execute(query)
                ]
        finally:
            engine.dispose()

    def has_table(self, table: str) -> bool:
        engine = self.engine()
        try:
            with engine.connect() as connection:
                return sa.inspect(connection).has_table(table)
        finally:
            engine.dispose()

    def execute(self, *statements: str) -> None:
        engine = self.engine()
        try:
            with engine.begin() as connection:
                for statement in statements:
                    connection.execute(sa.text(statement))
        finally:
            engine.dispose()


def normalize(value: Any) -> Any:
    """Driver differences away: aware → naive UTC, MySQL TIME timedelta → time,
    SQLite decimal text → Decimal, JSON text → object, memoryview → bytes."""
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return value.astimezone(dt.UTC).replace(tzinfo=None)
    if isinstance(value, dt.timedelta):
        return (dt.datetime.min + value).time()
    if isinstance(value, memoryview):
        return bytes(value)
    if isinstance(value, str) and value[:1] in "{[":
        return json.loads(value)
    if isinstance(value, str) and value.isdigit() and len(value) > 10:
        return decimal.Decimal(value)
    return value


def same_row(actual: Mapping[str, Any], expected: Mapping[str, Any]) -> None:
    for name, want in expected.items():
        got = actual[name]
        if isinstance(want, bool):
            got = bool(got)
        elif isinstance(want, decimal.Decimal) and isinstance(got, str):
            got = decimal.Decimal(got)
        assert got == want, f"column {name}: {got!r} != {want!r}"


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    """An empty database of each kind, private to the test."""
    yield from make_target(request.param, request, tmp_path)


@pytest.fixture
def sqlite_target(tmp_path: Path) -> Target:
    return Target("sqlite", f"sqlite:///{tmp_path / 'sink.db'}")


@pytest.fixture
def postgres_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    yield from make_target("postgresql", request, tmp_path)


@pytest.fixture
def mariadb_target(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    yield from make_target("mariadb", request, tmp_path)


def make_target(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Target]:
    database = f"sink_{uuid.uuid4().hex[:12]}"
    if kind == "sqlite":
        yield Target(kind, f"sqlite:///{tmp_path / 'sink.db'}")
    elif kind == "postgresql":
        server = request.getfixturevalue("postgres_server")
        admin = sa.create_engine(server.url(), isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(sa.text(f"CREATE DATABASE {database}"))
        yield Target(kind, server.url(database))
        with admin.connect() as connection:
            connection.execute(sa.text(f"DROP DATABASE {database} WITH (FORCE)"))
        admin.dispose()
    else:
        server = request.getfixturevalue("mariadb_server")
        server.execute(f"CREATE DATABASE {database}")
        yield Target(kind, server.url(database))
        server.execute(f"DROP DATABASE {database}")


# --- running the task ------------------------------------------------------------------


class ListReporter:
    """An `ErrantRecordReporter` that keeps what it is given."""

    def __init__(self) -> None:
        self.reported: list[tuple[SinkRecord, BaseException]] = []

    def report(self, record: SinkRecord, error: BaseException) -> Future[None]:
        self.reported.append((record, error))
        done: Future[None] = Future()
        done.set_result(None)
        return done


class Context:
    def __init__(self, config: Mapping[str, str], reporter: ErrantRecordReporter | None) -> None:
        self._config = config
        self._reporter = reporter

    @property
    def config(self) -> Mapping[str, str]:
        return self._config

    def assignment(self) -> set[TopicPartition]:
        return set()

    def pause(self, *partitions: TopicPartition) -> None:
        pass

    def resume(self, *partitions: TopicPartition) -> None:
        pass

    def request_commit(self) -> None:
        pass

    def errant_record_reporter(self) -> ErrantRecordReporter | None:
        return self._reporter


def sink(
    target: Target,
    *batches: Sequence[SinkRecord],
    reporter: ErrantRecordReporter | None = None,
    **config: str,
) -> dict[TopicPartition, int]:
    """Run one task over ``batches`` (one put each), then pre_commit; the offsets."""
    full = {"connection.url": target.url, "topics": "x", "auto.create": "true", **config}
    task = SqlSinkTask()
    task.initialize(Context(full, reporter))
    task.start(full)
    try:
        offsets: dict[TopicPartition, int] = {}
        for batch in batches:
            task.put(list(batch))
            for record in batch:
                offsets[record.topic_partition] = record.offset + 1
        return task.pre_commit(offsets)
    finally:
        task.close([])
        task.stop()


# --- the conformance suite -------------------------------------------------------------

SIMPLE_KEY = struct_schema([("id", INT64)], name="simple.Key")
SIMPLE = struct_schema([("id", INT64), ("name", STRING)], name="simple.Value")


class TestSqlSinkConformance(SinkConnectorConformance):
    @pytest.fixture
    def connector_class(self) -> type[SqlSinkConnector]:
        return SqlSinkConnector

    @pytest.fixture
    def sink_config(self, sqlite_target: Target) -> dict[str, str]:
        return {"connection.url": sqlite_target.url, "topics": "people", "auto.create": "true"}

    @pytest.fixture
    def sink_records(self) -> Callable[[int], list[SinkRecord]]:
        def make(n: int) -> list[SinkRecord]:
            return [
                SinkRecord(
                    "people",
                    i % 2,
                    SIMPLE_KEY,
                    Struct(SIMPLE_KEY, {"id": i}),
                    SIMPLE,
                    Struct(SIMPLE, {"id": i, "name": f"person {i}"}),
                    offset=i // 2,
                )
                for i in range(n)
            ]

        return make

    @pytest.fixture
    def read_sink_data(self, sqlite_target: Target) -> Callable[[], list[Struct]]:
        return lambda: [Struct(SIMPLE, r) for r in sqlite_target.rows("people")]


# --- change events -----------------------------------------------------------------------


def test_every_column_type_round_trips(target: Target) -> None:
    committed = sink(target, [event("c", 1, after=row(1)), event("r", 2, after=row(2), offset=1)])

    rows = target.rows("srv_inv_items")
    assert [r["id"] for r in rows] == [1, 2]
    for actual in rows:
        same_row(actual, EXPECTED)
    assert committed == {TopicPartition("srv.inv.items", 0): 2}


def test_create_update_delete_and_tombstone(target: Target) -> None:
    first = [event("c", i, after=row(i, name=f"n{i}")) for i in (1, 2, 3)]
    second = [
        event("u", 2, before=row(2, name="n2"), after=row(2, name="changed", note="x")),
        event("d", 3, before=row(3, name="n3")),
        tombstone(3),
        tombstone(1),  # a tombstone alone deletes too
    ]
    sink(target, numbered(first), numbered(second))

    rows = target.rows("srv_inv_items")
    assert [(r["id"], r["name"], r["note"]) for r in rows] == [(2, "changed", "x")]


def test_primary_key_change_moves_the_row(target: Target) -> None:
    sink(target, [event("c", 1, after=row(1, name="old key"))])
    moved = [  # what the source writes for an update that changes the key
        event("d", 1, before=row(1, name="old key")),
        tombstone(1),
        event("c", 7, after=row(7, name="new key")),
    ]
    sink(target, numbered(moved))

    assert [(r["id"], r["name"]) for r in target.rows("srv_inv_items")] == [(7, "new key")]


def test_last_change_of_a_key_in_a_batch_wins(sqlite_target: Target) -> None:
    batch = [
        event("c", 1, after=row(1, name="a")),
        event("d", 1, before=row(1, name="a")),  # delete after upsert: gone
        event("c", 2, after=row(2, name="b", note="kept only until deleted")),
        event("d", 2, before=row(2, name="b")),
        event("c", 2, after=row(2, name="again")),  # upsert after delete: back, note null
        event("u", 3, after=row(3, name="x")),
        event("u", 3, after=row(3, name="y")),  # later upsert of the same key wins
    ]
    sink(sqlite_target, numbered(batch), batch_size="1000")
    rows = sqlite_target.rows("srv_inv_items")
    assert [(r["id"], r["name"], r["note"]) for r in rows] == [(2, "again", None), (3, "y", None)]


def test_delete_then_insert_in_one_batch_with_insert_mode(postgres_target: Target) -> None:
    sink(postgres_target, [event("c", 1, after=row(1, name="first"))], **{"insert.mode": "insert"})
    batch = [event("d", 1, before=row(1)), event("c", 1, after=row(1, name="second"))]
    sink(postgres_target, numbered(batch), **{"insert.mode": "insert"})
    assert [r["name"] for r in postgres_target.rows("srv_inv_items")] == ["second"]


def test_replaying_records_leaves_the_tables_equal(target: Target) -> None:
    history = numbered(
        [
            event("c", 1, after=row(1, name="a")),
            event("c", 2, after=row(2, name="b")),
            event("u", 1, before=row(1, name="a"), after=row(1, name="a2")),
            event("d", 2, before=row(2, name="b")),
            tombstone(2),
            event("c", 3, after=row(3, name="c")),
        ]
    )
    sink(target, history[:4], history[4:], batch_size="2")
    once = target.rows("srv_inv_items")
    sink(target, history[2:])  # redelivered after a crash before the offset commit
    sink(target, history)
    assert target.rows("srv_inv_items") == once
    assert [(r["id"], r["name"]) for r in once] == [(1, "a2"), (3, "c")]


def test_truncate_event_empties_the_table(sqlite_target: Target) -> None:
    batch = [event("c", 1, after=row(1)), event("t", 0), event("c", 2, after=row(2))]
    sink(sqlite_target, numbered(batch))
    assert [r["id"] for r in sqlite_target.rows("srv_inv_items")] == [2]


def test_deletes_are_skipped_when_disabled(sqlite_target: Target) -> None:
    batch = [event("c", 1, after=row(1)), event("d", 1, before=row(1)), tombstone(1)]
    sink(sqlite_target, numbered(batch), **{"delete.enabled": "false"})
    assert [r["id"] for r in sqlite_target.rows("srv_inv_items")] == [1]


def test_update_mode_changes_only_existing_rows(sqlite_target: Target) -> None:
    sink(sqlite_target, [event("c", 1, after=row(1, name="a"))])
    batch = [event("u", 1, after=row(1, name="b")), event("u", 2, after=row(2, name="new"))]
    sink(sqlite_target, numbered(batch), **{"insert.mode": "update"})
    rows = sqlite_target.rows("srv_inv_items")
    assert [(r["id"], r["name"]) for r in rows] == [(1, "b")]


def test_table_name_from_source_block(sqlite_target: Target) -> None:
    config = {"table.name.format": "${db}_${table}"}
    changes = [event("c", 1, after=row(1)), event("c", 2, after=row(2)), tombstone(1)]
    sink(sqlite_target, numbered(changes), **config)
    assert [r["id"] for r in sqlite_target.rows("inv_items")] == [2]


def test_mysql_time_beyond_a_day_and_the_postgres_limit(
    mariadb_target: Target, postgres_target: Target
) -> None:
    hours_40 = 40 * 3600 * 1_000_000
    records = [
        event("c", 1, after=row(1, clock=-1_000_000)),
        event("c", 2, after=row(2, clock=hours_40), offset=1),
    ]
    sink(mariadb_target, records)
    engine = mariadb_target.engine()
    with engine.connect() as connection:
        raw = connection.exec_driver_sql(
            "SELECT CAST(clock AS CHAR) FROM srv_inv_items ORDER BY id"
        )
        assert [r[0] for r in raw] == ["-00:00:01.000000", "40:00:00.000000"]
    engine.dispose()

    reporter = ListReporter()
    sink(postgres_target, records, reporter=reporter)
    assert [r.offset for r, _ in reporter.reported] == [0, 1]
    assert "outside 00:00..24:00" in str(reporter.reported[0][1])
    assert not postgres_target.has_table("srv_inv_items")  # nothing was written


# --- flat and schemaless records -------------------------------------------------------------


def test_flat_structs_with_record_value_key(target: Target) -> None:
    records = [
        SinkRecord("people", 0, None, None, SIMPLE, Struct(SIMPLE, {"id": i, "name": n}), offset=i)
        for i, n in enumerate(["a", "b", "b2"])
    ]
    records[2] = records[2].new_record(value=Struct(SIMPLE, {"id": 1, "name": "b2"}))
    config = {"pk.mode": "record_value", "pk.fields": "id", "delete.enabled": "false"}
    sink(target, records, **config)
    assert target.rows("people") == [{"id": 0, "name": "a"}, {"id": 1, "name": "b2"}]


def test_schemaless_maps_go_into_an_existing_table(target: Target) -> None:
    target.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind VARCHAR(20), body TEXT)")
    records = [
        SinkRecord("events", 0, None, {"id": 1}, None, {"id": 1, "kind": "a"}, offset=0),
        SinkRecord("events", 0, None, {"id": 2}, None, {"id": 2, "body": {"x": [1]}}, offset=1),
        SinkRecord("events", 0, None, {"id": 1}, None, {"id": 1, "kind": "a2"}, offset=2),
        SinkRecord("events", 0, None, {"id": 2}, None, None, offset=3),
    ]
    sink(target, records)
    assert target.rows("events") == [{"id": 1, "kind": "a2", "body": None}]


def test_schemaless_records_cannot_create_a_table(sqlite_target: Target) -> None:
    records = [SinkRecord("events", 0, None, {"id": 1}, None, {"id": 1}, offset=0)]
    with pytest.raises(FatalError, match=r"auto\.create needs records with schemas"):
        sink(sqlite_target, records)


def test_missing_table_without_auto_create(sqlite_target: Target) -> None:
    with pytest.raises(FatalError, match=r"set auto\.create=true"):
        sink(sqlite_target, [event("c", 1, after=row(1))], **{"auto.create": "false"})


def test_plain_inserts_without_a_key(sqlite_target: Target) -> None:
    sqlite_target.execute("CREATE TABLE log (line TEXT)")
    records = [SinkRecord("log", 0, None, None, None, {"line": "same"}, offset=i) for i in range(3)]
    config = {"pk.mode": "none", "insert.mode": "insert", "delete.enabled": "false"}
    sink(sqlite_target, records, **config)
    assert sqlite_target.rows("log") == [{"line": "same"}] * 3


# --- auto.evolve -----------------------------------------------------------------------------

V1 = struct_schema([("id", INT32), ("name", STRING)], name="evolving.Value")
V2 = struct_schema(
    [("id", INT32), ("name", STRING), ("age", INT32.as_optional()), ("city", OPTIONAL_STRING)],
    name="evolving.Value",
)


def flat(schema: Schema, offset: int, **values: Any) -> SinkRecord:
    key = Struct(KEY, {"id": values["id"]})
    return SinkRecord("evolving", 0, KEY, key, schema, Struct(schema, values), offset=offset)


def test_auto_evolve_adds_optional_columns(target: Target) -> None:
    config = {"auto.evolve": "true"}
    sink(target, [flat(V1, 0, id=1, name="a")], **config)
    sink(target, [flat(V2, 1, id=2, name="b", age=30, city="Oslo")], **config)
    assert target.rows("evolving") == [
        {"id": 1, "name": "a", "age": None, "city": None},
        {"id": 2, "name": "b", "age": 30, "city": "Oslo"},
    ]


def test_evolving_needs_auto_evolve_and_optional_fields(sqlite_target: Target) -> None:
    sink(sqlite_target, [flat(V1, 0, id=1, name="a")])
    with pytest.raises(FatalError, match=r"no columns \['age', 'city'\].*auto.evolve=true"):
        sink(sqlite_target, [flat(V2, 1, id=2, name="b")])
    required = struct_schema([("id", INT32), ("name", STRING), ("rank", INT32)])
    with pytest.raises(FatalError, match=r"\['rank'\] that are required and have no default"):
        sink(sqlite_target, [flat(required, 1, id=2, name="b", rank=1)], **{"auto.evolve": "true"})


# --- bad records -------------------------------------------------------------------------


def test_bad_records_go_to_the_reporter_and_the_rest_is_written(target: Target) -> None:
    reporter = ListReporter()
    records = numbered(
        [
            event("c", 1, after=row(1)),
            event("c", 2, after=row(2, zoned="not a time")),
            SinkRecord("srv.inv.items", 0, None, None, ENVELOPE, event("c", 3, after=row(3)).value),
            event("c", 4, after=row(4)),
        ]
    )
    committed = sink(target, records, reporter=reporter)
    assert [r["id"] for r in target.rows("srv_inv_items")] == [1, 4]
    reasons = {r.offset: str(e) for r, e in reporter.reported}
    assert set(reasons) == {1, 2}
    assert "'zoned'" in reasons[1] and "not an ISO-8601 timestamp" in reasons[1]
    assert "no key" in reasons[2]
    assert all(isinstance(e, RecordError) for _, e in reporter.reported)
    assert committed == {TopicPartition("srv.inv.items", 0): 4}


def test_rows_the_database_rejects_go_to_the_reporter(postgres_target: Target) -> None:
    postgres_target.execute("CREATE TABLE people (id BIGINT PRIMARY KEY, name VARCHAR(3))")
    records = [
        SinkRecord("people", 0, SIMPLE_KEY, Struct(SIMPLE_KEY, {"id": i}), SIMPLE,
                   Struct(SIMPLE, {"id": i, "name": n}), offset=i)
        for i, n in enumerate(["ok", "too long", "ab"])
    ]  # fmt: skip
    reporter = ListReporter()
    sink(postgres_target, records, reporter=reporter)
    assert postgres_target.rows("people") == [{"id": 0, "name": "ok"}, {"id": 2, "name": "ab"}]
    assert [r.offset for r, _ in reporter.reported] == [1]
    assert "rejected" in str(reporter.reported[0][1])


def test_a_bad_record_without_reporter_fails_the_batch(sqlite_target: Target) -> None:
    records = [event("c", 1, after=row(1)), event("c", 2, after=row(2, zoned="bad"), offset=1)]
    with pytest.raises(RecordError, match="zoned"):
        sink(sqlite_target, records)
    assert not sqlite_target.has_table("srv_inv_items")  # the batch was not written


# --- config ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("changes", "key"),
    [
        ({"connection.url": None}, "connection.url"),
        ({"connection.url": "not a url"}, "connection.url"),
        ({"insert.mode": "merge"}, "insert.mode"),
        ({"pk.mode": "kafka"}, "pk.mode"),
        ({"pk.mode": "none"}, "insert.mode"),
        ({"pk.mode": "record_value", "pk.fields": "id"}, "delete.enabled"),
        ({"batch.size": "0"}, "batch.size"),
        ({"table.name.format": "${schema}.${table}"}, "table.name.format"),
        ({"auto.create": "maybe"}, "auto.create"),
    ],
)
def test_config_errors_name_the_key(changes: dict[str, str | None], key: str) -> None:
    config = {"connection.url": "sqlite:///x.db", "topics": "t", **changes}
    raw = {k: v for k, v in config.items() if v is not None}
    with pytest.raises(ConfigError) as caught:
        SqlSinkConnector().start(raw)
    assert caught.value.key == key
    assert key in {e.key for e in SqlSinkConnector().validate(raw)}


def test_an_unreachable_database_is_retriable() -> None:
    unreachable = Target("postgresql", "postgresql+psycopg://postgres@127.0.0.1:1/none")
    with pytest.raises(RetriableError, match="cannot reach the database"):
        sink(unreachable, [event("c", 1, after=row(1))])


def test_unknown_dialect_is_a_config_error() -> None:
    task = SqlSinkTask()
    config = {"connection.url": "nosuchdb://host/db"}
    task.initialize(Context(config, None))
    with pytest.raises(ConfigError, match=r"connection\.url"):
        task.start(config)


def test_connection_password_overrides_the_url() -> None:
    config = parse_config(
        SqlSinkConfig,
        {"connection.url": "postgresql://u:old@h/db", "connection.password": "new"},
    )
    assert config.url().password == "new"
    assert "new" not in repr(config)


def test_table_names() -> None:
    assert table_name("${topic}", "srv.inv.items", "inv", "items") == "srv_inv_items"
    assert table_name("${table}", "srv.inv.items", "inv", "items") == "items"
    assert table_name("dw.${db}_${table}", "t", "inv", "items") == "dw_inv_items"
    assert table_name("${db}.${table}", "srv.inv.items", None, None) == "inv_items"
    with pytest.raises(ValueError, match=r"\$\{db\}"):
        table_name("${db}", "t", None, None)


def test_connector_plans_one_config_per_task() -> None:
    connector = SqlSinkConnector()
    connector.start({"connection.url": "sqlite:///x.db", "topics": "t"})
    assert len(connector.task_configs(3)) == 3


# --- dialects (pure) -----------------------------------------------------------------------------


def compiled(kind: str, schema: Schema, is_key: bool = False) -> str:
    dialect = {"mysql": sa.dialects.mysql, "postgresql": sa.dialects.postgresql,
               "sqlite": sa.dialects.sqlite}[kind].dialect()  # fmt: skip
    return str(column_type(rules_for(kind), schema, is_key).compile(dialect=dialect))


@pytest.mark.parametrize(
    ("kind", "schema", "is_key", "sql"),
    [
        ("mysql", STRING, True, "VARCHAR(255)"),
        ("mysql", STRING, False, "LONGTEXT"),
        ("mysql", BYTES, True, "VARBINARY(255)"),
        ("mysql", decimal_schema(2, precision=80), False, "NUMERIC(65, 2)"),
        ("postgresql", decimal_schema(2), False, "NUMERIC(38, 2)"),
        ("sqlite", decimal_schema(2), False, "TEXT"),
        ("mysql", named(Type.INT64, dialects.DBZ_MICRO_TIMESTAMP), False, "DATETIME(6)"),
        ("postgresql", named(Type.STRING, dialects.DBZ_ZONED_TIMESTAMP), False,
         "TIMESTAMP WITH TIME ZONE"),
        ("mysql", named(Type.INT64, dialects.DBZ_MICRO_TIME), False, "TIME(6)"),
        ("postgresql", named(Type.STRING, dialects.DBZ_JSON), False, "JSONB"),
        ("mysql", named(Type.BYTES, dialects.DBZ_BITS, length="12"), False, "VARBINARY(2)"),
        ("postgresql", FLOAT64, False, "DOUBLE PRECISION"),
        ("mysql", FLOAT32, False, "FLOAT"),
        ("sqlite", INT8, False, "SMALLINT"),
    ],
)  # fmt: skip
def test_column_types(kind: str, schema: Schema, is_key: bool, sql: str) -> None:
    assert compiled(kind, schema, is_key) == sql


@pytest.mark.parametrize(
    ("kind", "clause"),
    [
        ("sqlite", "ON CONFLICT (id) DO UPDATE SET name = excluded.name"),
        ("postgresql", "ON CONFLICT (id) DO UPDATE SET name = excluded.name"),
        ("mysql", "ON DUPLICATE KEY UPDATE name = VALUES(name)"),
    ],
)
def test_upsert_statements(kind: str, clause: str) -> None:
    table = sa.Table("t", sa.MetaData(), sa.Column("id", sa.Integer), sa.Column("name", sa.Text))
    statement = upsert_statement(kind, table, ["id"], ["id", "name"])
    assert statement is not None
    module = getattr(sa.dialects, kind)
    assert clause in str(statement.compile(dialect=module.dialect()))
    assert upsert_statement("oracle", table, ["id"], ["id", "name"]) is None


# --- through the runtime -----------------------------------------------------------------------


def wait_for(check: Callable[[], bool], timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def test_standalone_pipeline_applies_change_events(tmp_path: Path) -> None:
    from omconnect.message import Message
    from omconnect.runtime.converters.json import JsonConverter
    from omconnect.runtime.record_mapping import to_message
    from omconnect.runtime.standalone import Standalone

    database = tmp_path / "target.db"
    worker = tmp_path / "worker.json"
    worker.write_text(
        json.dumps({"data.dir": str(tmp_path / "data"), "offset.flush.interval.ms": "200"})
    )
    connector = tmp_path / "sink.json"
    connector.write_text(
        json.dumps(
            {
                "name": "to-sqlite",
                "connector.class": "omconnect.connectors.sql.sink:SqlSinkConnector",
                "topics": "srv.inv.items",
                "connection.url": f"sqlite:///{database}",
                "auto.create": "true",
                "key.converter": "json",
                "value.converter": "json",
                "key.converter.schemas.enable": "true",
                "value.converter.schemas.enable": "true",
            }
        )
    )
    converter = JsonConverter()
    converter.configure({"schemas.enable": "true"}, is_key=False)

    def message(record: SinkRecord) -> Message:
        key = converter.from_connect(record.topic, record.key_schema, record.key)
        value = converter.from_connect(record.topic, record.value_schema, record.value)
        return to_message(record, key, value)

    history = [
        event("c", 1, after=row(1, name="one")),
        event("c", 2, after=row(2, name="two")),
        event("u", 1, before=row(1, name="one"), after=row(1, name="uno")),
        event("d", 2, before=row(2, name="two")),
        tombstone(2),
    ]
    target = Target("sqlite", f"sqlite:///{database}")

    def applied() -> bool:
        if not database.exists():
            return False
        try:
            return [(r["id"], r["name"]) for r in target.rows("srv_inv_items")] == [(1, "uno")]
        except sa.exc.NoSuchTableError:
            return False

    standalone = Standalone(worker, [connector])
    try:
        standalone.access_point.create_producer().send_batch([message(r) for r in history])
        wait_for(applied)
    finally:
        standalone.stop()
    (only,) = target.rows("srv_inv_items")
    same_row(only, {**EXPECTED, "id": 1, "name": "uno"})


# --- pure cores: the batch plan and value conversion -------------------------------------------


def change(op: str, id_: int, **row_values: Any) -> Change:
    record = SinkRecord("t", 0, None, None, None, None)
    kind = {"u": Op.UPSERT, "d": Op.DELETE, "t": Op.TRUNCATE}[op]
    key = {"id": id_} if op != "t" else {}
    row_ = {"id": id_, **row_values} if op == "u" else {}
    return Change(record, "t", kind, key, row_, None)


def net(changes: list[Change]) -> tuple[bool, list[int], list[dict[str, Any]]]:
    (plan,) = plan_batch(changes)
    return plan.truncate, [c.key["id"] for c in plan.deletes], [c.row for c in plan.upserts]


@pytest.mark.parametrize(
    ("ops", "expected"),
    [
        ([change("u", 1, a=1), change("d", 1)], (False, [1], [])),
        ([change("d", 1), change("u", 1, a=1)], (False, [1], [{"id": 1, "a": 1}])),
        ([change("u", 1, a=1, b=1), change("u", 1, a=2)], (False, [], [{"id": 1, "a": 2, "b": 1}])),
        ([change("u", 1, a=1), change("d", 1), change("u", 1, b=2)],
         (False, [1], [{"id": 1, "b": 2}])),
        ([change("u", 1), change("t", 0), change("u", 2)], (True, [], [{"id": 2}])),
        ([change("u", 1), change("u", 2), change("d", 3)], (False, [3], [{"id": 1}, {"id": 2}])),
    ],
)  # fmt: skip
def test_batch_plan_keeps_the_net_effect_per_key(
    ops: list[Change], expected: tuple[bool, list[int], list[dict[str, Any]]]
) -> None:
    assert net(ops) == expected


def test_batch_plan_keeps_every_unkeyed_row_per_table() -> None:
    record = SinkRecord("t", 0, None, None, None, None)
    rows = [Change(record, t, Op.UPSERT, {}, {"n": i}, None) for i, t in enumerate("abab")]
    plans = plan_batch(rows)
    assert [(p.table, [c.row["n"] for c in p.upserts]) for p in plans] == [
        ("a", [0, 2]),
        ("b", [1, 3]),
    ]


@pytest.mark.parametrize(
    ("dialect", "schema", "value", "expected"),
    [
        ("sqlite", decimal_schema(2), decimal.Decimal("1E+3"), "1000"),
        ("postgresql", decimal_schema(0), decimal.Decimal(2**64 - 1), 2**64 - 1),
        ("postgresql", decimal_schema(2), decimal.Decimal("1.50"), decimal.Decimal("1.50")),
        ("mysql", named(Type.INT64, dialects.DBZ_MICRO_TIME), -1, dt.timedelta(microseconds=-1)),
        ("sqlite", named(Type.INT64, dialects.DBZ_NANO_TIME), 1_500, dt.time(0, 0, 0, 1)),
        ("sqlite", named(Type.INT32, dialects.DBZ_TIME), 3_600_001, dt.time(1, 0, 0, 1000)),
        ("postgresql", named(Type.INT64, dialects.DBZ_NANO_TIMESTAMP), -1,
         dt.datetime(1969, 12, 31, 23, 59, 59, 999999)),
        ("mysql", named(Type.INT64, dialects.DBZ_TIMESTAMP), 1_000,
         dt.datetime(1970, 1, 1, 0, 0, 1)),
        ("postgresql", named(Type.STRING, dialects.DBZ_ZONED_TIMESTAMP),
         "2026-01-01T01:00:00+01:00", dt.datetime(2026, 1, 1, tzinfo=dt.UTC)),
        ("mysql", named(Type.STRING, dialects.DBZ_ZONED_TIMESTAMP), "2026-01-01T00:00:00Z",
         dt.datetime(2026, 1, 1)),
        ("sqlite", named(Type.INT32, dialects.DBZ_DATE), -1, dt.date(1969, 12, 31)),
        ("sqlite", struct_schema([("a", INT32)]), Struct(struct_schema([("a", INT32)]), {"a": 1}),
         '{"a":1}'),
        ("sqlite", None, [1, "x"], '[1,"x"]'),
    ],
)  # fmt: skip
def test_values_convert_by_schema_name(
    dialect: str, schema: Schema | None, value: Any, expected: Any
) -> None:
    assert to_db_value(rules_for(dialect), schema, value) == expected


def test_a_postgres_time_must_fit_in_a_day() -> None:
    with pytest.raises(ValueError, match=r"outside 00:00\.\.24:00"):
        to_db_value(rules_for("postgresql"), named(Type.INT64, dialects.DBZ_MICRO_TIME), -1)


def test_schemaless_columns_the_table_lacks_go_to_the_reporter(sqlite_target: Target) -> None:
    sqlite_target.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, kind TEXT)")
    records = [
        SinkRecord("events", 0, None, {"id": 1}, None, {"id": 1, "kind": "a"}, offset=0),
        SinkRecord("events", 0, None, {"id": 2}, None, {"id": 2, "colour": "red"}, offset=1),
    ]
    reporter = ListReporter()
    sink(sqlite_target, records, reporter=reporter)
    assert sqlite_target.rows("events") == [{"id": 1, "kind": "a"}]
    assert [(r.offset, str(e)) for r, e in reporter.reported] == [
        (1, "table 'events' has no columns ['colour']")
    ]
