"""Column schemas and value conversion of the MySQL source, against a real MariaDB:
rows read from the binlog (pymysql-replication) and the same rows read by SELECT
convert to the same values, those of docs/connectors/cdc-events.md."""

from __future__ import annotations

import calendar
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.row_event import DeleteRowsEvent, UpdateRowsEvent, WriteRowsEvent

from omconnect.connect.schema import Type
from omconnect.connectors.mysql.filters import Filters, parse_filters
from omconnect.connectors.mysql.tables import Table, load_table, load_tables
from omconnect.connectors.mysql.values import (
    column_schema,
    converter,
    positional_converter,
    prepare_session,
    restore_empty_sets,
    snapshot_conversions,
)
from omconnect.testing.databases import MariaDBServer

DB = "mysql_values_types"

TYPES_TABLE = """CREATE TABLE types (
  id INT PRIMARY KEY,
  ti TINYINT, tiu TINYINT UNSIGNED, si SMALLINT, siu SMALLINT UNSIGNED,
  mi MEDIUMINT, miu MEDIUMINT UNSIGNED, i INT, iu INT UNSIGNED,
  bi BIGINT, biu BIGINT UNSIGNED,
  d65 DECIMAL(65,30), d10 DECIMAL(10,2), f FLOAT, db DOUBLE,
  dt DATE, tm TIME(6), dtt DATETIME(6), ts TIMESTAMP(6) NULL, y YEAR,
  txt VARCHAR(20) CHARACTER SET utf8mb4, lat VARCHAR(10) CHARACTER SET latin1, tx TEXT,
  bn BINARY(4), vb VARBINARY(8), bl BLOB,
  e ENUM('a','b','c'), st SET('x','y','z'), b1 BIT(1), b12 BIT(12), j JSON
)"""

ROWS = [
    "(1, -128, 255, -32768, 65535, -8388608, 16777215, -2147483648, 4294967295,"
    " -9223372036854775808, 18446744073709551615,"
    " '-12345678901234567890123456789012345.123456789012345678901234567890', -12345678.99,"
    " 1.2345678, -2.25, '0000-00-00', '-838:59:59.000000', '2026-11-22 05:54:21.123456',"
    " '2026-11-22 11:24:21.123456', 2026, 'h\U0001f600\u00e9', 'caf\u00e9', 'long text',"
    " x'01020300', x'ff00', x'deadbeef', 'b', 'z,x', b'1', b'101000000011',"
    """ '{"a": [1, 2.5, null, "x"], "b": true}')""",
    "(2, 127, 0, 32767, 0, 8388607, 0, 2147483647, 0, 9223372036854775807, 0,"
    " '99999999999999999999999999999999999.999999999999999999999999999999', 0.01,"
    " 3.4e38, 1e300, '1969-12-31', '123:04:05.5', '1000-01-01 00:00:00',"
    " '1970-01-01 05:30:01', 1901, '', '', '', x'', x'', x'', 'a', '', b'0', b'0',"
    """ '[1,"\u00e9"]')""",
    "(3" + ", NULL" * 30 + ")",
]

ZEROS_TABLE = """CREATE TABLE zeros (
  id INT PRIMARY KEY, dz DATE NOT NULL, dtz DATETIME NOT NULL, tsz TIMESTAMP NOT NULL,
  tsn TIMESTAMP NULL, sz SET('p','q') NOT NULL, yz YEAR NOT NULL, bad DATE
)"""
ZEROS_ROW = (
    "(1, '0000-00-00', '0000-00-00 00:00:00', '0000-00-00 00:00:00', '0000-00-00 00:00:00',"
    " '', 0, '2020-00-10')"
)


def _epoch_us(*parts: int, micros: int = 0) -> int:
    return calendar.timegm((*parts, 0, 0, 0)) * 1_000_000 + micros


EXPECTED: dict[int, dict[str, Any]] = {
    1: {
        "id": 1,
        "ti": -128,
        "tiu": 255,
        "si": -32768,
        "siu": 65535,
        "mi": -8388608,
        "miu": 16777215,
        "i": -2147483648,
        "iu": 4294967295,
        "bi": -9223372036854775808,
        "biu": Decimal("18446744073709551615"),
        "d65": Decimal("-12345678901234567890123456789012345.123456789012345678901234567890"),
        "d10": Decimal("-12345678.99"),
        "f": 1.23457,
        "db": -2.25,
        "dt": None,
        "tm": -(838 * 3600 + 59 * 60 + 59) * 1_000_000,
        "dtt": _epoch_us(2026, 11, 22, 5, 54, 21, micros=123456),
        "ts": "2026-11-22T05:54:21.123456Z",
        "y": 2026,
        "txt": "h\U0001f600\u00e9",
        "lat": "caf\u00e9",
        "tx": "long text",
        "bn": b"\x01\x02\x03\x00",
        "vb": b"\xff\x00",
        "bl": b"\xde\xad\xbe\xef",
        "e": "b",
        "st": "x,z",
        "b1": True,
        "b12": b"\x0a\x03",
        "j": '{"a": [1, 2.5, null, "x"], "b": true}',
    },
    2: {
        "id": 2,
        "ti": 127,
        "tiu": 0,
        "si": 32767,
        "siu": 0,
        "mi": 8388607,
        "miu": 0,
        "i": 2147483647,
        "iu": 0,
        "bi": 9223372036854775807,
        "biu": Decimal(0),
        "d65": Decimal("99999999999999999999999999999999999.999999999999999999999999999999"),
        "d10": Decimal("0.01"),
        "f": 3.4e38,
        "db": 1e300,
        "dt": -1,
        "tm": ((123 * 60 + 4) * 60 + 5) * 1_000_000 + 500_000,
        "dtt": _epoch_us(1000, 1, 1, 0, 0, 0),
        "ts": "1970-01-01T00:00:01.000000Z",
        "y": 1901,
        "txt": "",
        "lat": "",
        "tx": "",
        "bn": b"\x00\x00\x00\x00",
        "vb": b"",
        "bl": b"",
        "e": "a",
        "st": "",
        "b1": False,
        "b12": b"\x00\x00",
        "j": '[1,"\u00e9"]',
    },
}
EXPECTED[3] = {name: (3 if name == "id" else None) for name in EXPECTED[1]}

EXPECTED_ZEROS = {
    "id": 1,
    "dz": 0,
    "dtz": 0,
    "tsz": "1970-01-01T00:00:00Z",
    "tsn": None,
    "sz": "",
    "yz": 0,
    "bad": None,
}


@pytest.fixture(scope="module")
def tables(mariadb_server: MariaDBServer) -> Iterator[dict[str, Table]]:
    """Tables `types` and `zeros` filled in a non-UTC session that allows zero dates."""
    mariadb_server.execute(f"DROP DATABASE IF EXISTS {DB}", f"CREATE DATABASE {DB}")
    mariadb_server.execute(
        "SET SESSION sql_mode = 'NO_ENGINE_SUBSTITUTION'",
        "SET SESSION time_zone = '+05:30'",
        TYPES_TABLE,
        ZEROS_TABLE,
        *(f"INSERT INTO types VALUES {row}" for row in ROWS),
        f"INSERT INTO zeros VALUES {ZEROS_ROW}",
        "UPDATE types SET ti = ti WHERE id = 1",  # no change: no row event
        "UPDATE types SET tx = 'changed' WHERE id = 3",
        "DELETE FROM types WHERE id = 3",
        database=DB,
    )
    connection = mariadb_server.connect(DB)
    try:
        found = load_tables(connection, lambda db, _table: db == DB)
    finally:
        connection.close()
    yield {name: table for (_db, name), table in found.items()}
    mariadb_server.execute(f"DROP DATABASE IF EXISTS {DB}")


def _binlog_rows(server: MariaDBServer) -> list[tuple[str, str, dict[str, Any]]]:
    """(event kind, table, raw values) of every row image of DB in the binlog, with
    empty SETs restored from pymysql-replication's ``none_sources``."""
    reader = BinLogStreamReader(
        connection_settings={
            "host": server.host,
            "port": server.port,
            "user": server.user,
            "password": server.password,
        },
        server_id=9311,
        blocking=False,
        resume_stream=False,
        is_mariadb=False,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent],
        only_schemas=[DB],
    )
    out: list[tuple[str, str, dict[str, Any]]] = []
    try:
        for event in reader:
            for row in event.rows:
                for image in ("values", "before_values", "after_values"):
                    if image in row:
                        sources = row.get(image.replace("values", "none_sources"))
                        values = restore_empty_sets(dict(row[image]), sources)
                        out.append((f"{type(event).__name__}.{image}", event.table, values))
    finally:
        reader.close()
    return out


def _select_rows(server: MariaDBServer, table: str) -> list[dict[str, Any]]:
    import pymysql.cursors

    connection = server.connect(DB, cursorclass=pymysql.cursors.DictCursor)
    try:
        prepare_session(connection)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {table} ORDER BY id")
            return list(cursor.fetchall())
    finally:
        connection.close()


def test_binlog_rows_convert_to_the_documented_values(
    mariadb_server: MariaDBServer, tables: dict[str, Table]
) -> None:
    convert = converter(tables["types"], Filters.all())
    inserted = [
        convert(values)
        for kind, table, values in _binlog_rows(mariadb_server)
        if table == "types" and kind == "WriteRowsEvent.values"
    ]
    assert inserted == [EXPECTED[1], EXPECTED[2], EXPECTED[3]]


def test_select_rows_convert_to_the_same_values(
    mariadb_server: MariaDBServer, tables: dict[str, Table]
) -> None:
    convert = converter(tables["types"], Filters.all())
    selected = [convert(row) for row in _select_rows(mariadb_server, "types")]
    assert selected == [EXPECTED[1], EXPECTED[2]]  # row 3 was deleted


def _snapshot_rows(server: MariaDBServer, table: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    """(column names, rows) as the snapshot reads them: tuples, DATETIME as text."""
    connection = server.connect(DB, conv=snapshot_conversions())
    try:
        prepare_session(connection)
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT * FROM {table} ORDER BY id")
            names = [str(d[0]) for d in cursor.description]
            return names, list(cursor.fetchall())
    finally:
        connection.close()


def test_snapshot_tuple_rows_convert_to_the_same_values(
    mariadb_server: MariaDBServer, tables: dict[str, Table]
) -> None:
    names, rows = _snapshot_rows(mariadb_server, "types")
    assert any(type(value) is str and value.startswith("20") for value in rows[0])  # DATETIME
    convert = positional_converter(tables["types"], Filters.all(), names)
    assert [convert(row) for row in rows] == [EXPECTED[1], EXPECTED[2]]
    names, rows = _snapshot_rows(mariadb_server, "zeros")
    convert = positional_converter(tables["zeros"], Filters.all(), names)
    assert [convert(row) for row in rows] == [EXPECTED_ZEROS]


def test_a_column_missing_from_the_select_reads_as_none(tables: dict[str, Table]) -> None:
    table = tables["zeros"]
    names, rows = ["id"], [(7,)]
    expected = converter(table, Filters.all())({"id": 7})
    assert positional_converter(table, Filters.all(), names)(rows[0]) == expected


def test_update_and_delete_images_convert_like_inserts(
    mariadb_server: MariaDBServer, tables: dict[str, Table]
) -> None:
    convert = converter(tables["types"], Filters.all())
    images = [
        (kind, convert(values))
        for kind, table, values in _binlog_rows(mariadb_server)
        if table == "types" and not kind.startswith("Write")
    ]
    assert images == [
        ("UpdateRowsEvent.before_values", EXPECTED[3]),
        ("UpdateRowsEvent.after_values", {**EXPECTED[3], "tx": "changed"}),
        ("DeleteRowsEvent.values", {**EXPECTED[3], "tx": "changed"}),
    ]


def test_zero_dates_are_null_or_the_epoch_for_not_null_columns(
    mariadb_server: MariaDBServer, tables: dict[str, Table]
) -> None:
    convert = converter(tables["zeros"], Filters.all())
    from_binlog = [
        convert(values) for _kind, table, values in _binlog_rows(mariadb_server) if table == "zeros"
    ]
    from_select = [convert(row) for row in _select_rows(mariadb_server, "zeros")]
    assert from_binlog == from_select == [EXPECTED_ZEROS]


def test_converted_values_fit_their_column_schemas(tables: dict[str, Table]) -> None:
    for name in ("types", "zeros"):
        table = tables[name]
        rows = list(EXPECTED.values()) if name == "types" else [EXPECTED_ZEROS]
        for row in rows:
            for column in table.columns:
                column_schema(column).validate(row[column.name])


@pytest.mark.parametrize(
    ("column", "type_", "name", "params"),
    [
        ("ti", Type.INT8, None, {}),
        ("tiu", Type.INT16, None, {}),
        ("siu", Type.INT32, None, {}),
        ("miu", Type.INT32, None, {}),
        ("iu", Type.INT64, None, {}),
        ("bi", Type.INT64, None, {}),
        ("biu", Type.BYTES, "org.apache.kafka.connect.data.Decimal", {"scale": "0"}),
        (
            "d65",
            Type.BYTES,
            "org.apache.kafka.connect.data.Decimal",
            {"scale": "30", "connect.decimal.precision": "65"},
        ),
        ("f", Type.FLOAT32, None, {}),
        ("db", Type.FLOAT64, None, {}),
        ("b1", Type.BOOLEAN, None, {}),
        ("b12", Type.BYTES, "io.debezium.data.Bits", {"length": "12"}),
        ("dt", Type.INT32, "io.debezium.time.Date", {}),
        ("tm", Type.INT64, "io.debezium.time.MicroTime", {}),
        ("dtt", Type.INT64, "io.debezium.time.MicroTimestamp", {}),
        ("ts", Type.STRING, "io.debezium.time.ZonedTimestamp", {}),
        ("y", Type.INT32, "io.debezium.time.Year", {}),
        ("lat", Type.STRING, None, {}),
        ("bl", Type.BYTES, None, {}),
        ("e", Type.STRING, "io.debezium.data.Enum", {"allowed": "a,b,c"}),
        ("st", Type.STRING, "io.debezium.data.EnumSet", {"allowed": "x,y,z"}),
        ("j", Type.STRING, "io.debezium.data.Json", {}),
    ],
)
def test_column_schemas_follow_the_type_table(
    tables: dict[str, Table], column: str, type_: Type, name: str | None, params: dict[str, str]
) -> None:
    schema = column_schema(tables["types"].column(column))
    assert (schema.type, schema.name, schema.params, schema.optional) == (
        type_,
        name,
        params,
        True,
    )


def test_not_null_columns_have_required_schemas(tables: dict[str, Table]) -> None:
    table = tables["zeros"]
    assert not column_schema(table.column("dz")).optional
    assert column_schema(table.column("bad")).optional
    assert table.primary_key == ("id",)


def test_masks_truncation_and_excluded_columns_apply(
    mariadb_server: MariaDBServer, tables: dict[str, Table]
) -> None:
    filters = parse_filters(
        {
            "column.exclude.list": f"{DB}.types.(ti|tiu|bl)",
            "column.mask.with.3.chars": f"{DB}.types.txt",
            "column.truncate.to.2.chars": f"{DB}.types.tx",
            # Masks apply to string columns only: the int id stays as it is.
            "column.mask.with.5.chars": f"{DB}.types.id",
        }
    )
    convert = converter(tables["types"], filters)
    row = convert(_select_rows(mariadb_server, "types")[0])
    assert "ti" not in row and "tiu" not in row and "bl" not in row
    assert (row["id"], row["txt"], row["tx"]) == (1, "***", "lo")


def test_load_table_reads_one_table_again_after_ddl(
    mariadb_server: MariaDBServer, tables: dict[str, Table]
) -> None:
    mariadb_server.execute(
        "CREATE TABLE altered (a INT NOT NULL, b VARCHAR(3), PRIMARY KEY (b, a))", database=DB
    )
    connection = mariadb_server.connect(DB)
    try:
        before = load_table(connection, DB, "altered")
        mariadb_server.execute("ALTER TABLE altered ADD COLUMN c SET('u','it''s')", database=DB)
        after = load_table(connection, DB, "altered")
        missing = load_table(connection, DB, "no_such_table")
    finally:
        connection.close()
    assert before is not None and after is not None and missing is None
    assert before.primary_key == after.primary_key == ("b", "a")
    assert [c.name for c in after.columns] == ["a", "b", "c"]
    assert after.column("c").enum_values == ("u", "it's")
    with pytest.raises(KeyError):
        before.column("c")


def test_load_tables_skips_system_schemas_and_excluded_tables(
    mariadb_server: MariaDBServer, tables: dict[str, Table]
) -> None:
    connection = mariadb_server.connect(DB)
    try:
        found = load_tables(connection, lambda _db, table: table != "zeros")
    finally:
        connection.close()
    assert (DB, "types") in found and (DB, "zeros") not in found
    assert not {db for db, _ in found} & {"mysql", "information_schema", "performance_schema"}
