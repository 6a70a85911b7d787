"""Table structure of a MySQL/MariaDB database, read from ``information_schema``.

A `Table` is immutable: after a DDL the source reads the table again with
`load_table` and gets a new object (and with it new schemas and converters, which
are cached per `Table` object). The column facts kept are those that decide a
column's schema and how its values are converted (`values.py`).

MariaDB stores JSON as LONGTEXT with a ``json_valid(`col`)`` check constraint; such
columns are reported with ``data_type`` "json", as on MySQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql

SYSTEM_SCHEMAS = frozenset({"mysql", "information_schema", "performance_schema", "sys"})

_COLUMNS_SQL = (
    "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME, ORDINAL_POSITION, DATA_TYPE, COLUMN_TYPE,"
    " IS_NULLABLE, NUMERIC_PRECISION, NUMERIC_SCALE, DATETIME_PRECISION, CHARACTER_SET_NAME,"
    " CHARACTER_MAXIMUM_LENGTH"
    " FROM information_schema.COLUMNS c"
    " WHERE TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')"
    " AND EXISTS (SELECT 1 FROM information_schema.TABLES t WHERE t.TABLE_SCHEMA = c.TABLE_SCHEMA"
    " AND t.TABLE_NAME = c.TABLE_NAME AND t.TABLE_TYPE = 'BASE TABLE')"
)
_PRIMARY_KEYS_SQL = (
    "SELECT TABLE_SCHEMA, TABLE_NAME, COLUMN_NAME FROM information_schema.STATISTICS"
    " WHERE INDEX_NAME = 'PRIMARY'"
    " AND TABLE_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')"
)
# MariaDB only (MySQL's CHECK_CONSTRAINTS has no TABLE_NAME/LEVEL): JSON columns.
_JSON_CHECKS_SQL = (
    "SELECT CONSTRAINT_SCHEMA, TABLE_NAME, CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS"
    " WHERE LEVEL = 'Column' AND CHECK_CLAUSE LIKE 'json_valid(%%)'"
    " AND CONSTRAINT_SCHEMA NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys')"
)
_ONE_TABLE = " AND {schema} = %s AND TABLE_NAME = %s"


@dataclass(frozen=True, slots=True)
class Column:
    """One column as ``information_schema.COLUMNS`` describes it.

    ``data_type`` is lower-case without parameters ("int", "varchar", "enum", "json");
    ``column_type`` is the full declaration ("int(10) unsigned", "enum('a','b')").
    ``precision``/``scale`` are numeric precision and scale (``precision`` is the bit
    count for BIT); ``datetime_precision`` the fsp of TIME/DATETIME/TIMESTAMP;
    ``length`` the character length of character types, the byte length of binary
    types and the bit count of BIT; ``enum_values`` the members of ENUM and SET in
    definition order.
    """

    name: str
    position: int
    data_type: str
    column_type: str
    unsigned: bool
    nullable: bool
    precision: int | None = None
    scale: int | None = None
    datetime_precision: int | None = None
    charset: str | None = None
    enum_values: tuple[str, ...] = ()
    length: int | None = None


@dataclass(frozen=True, slots=True)
class Table:
    """A base table: its columns in ordinal order and its primary-key column names in
    key order (empty when the table has no primary key)."""

    database: str
    name: str
    columns: tuple[Column, ...]
    primary_key: tuple[str, ...] = ()

    def column(self, name: str) -> Column:
        """The column called ``name``; `KeyError` if the table has none."""
        for column in self.columns:
            if column.name == name:
                return column
        raise KeyError(f"{self.database}.{self.name} has no column {name!r}")

    @property
    def qualified_name(self) -> str:
        """``db.table``."""
        return f"{self.database}.{self.name}"


TableId = tuple[str, str]


def load_tables(
    connection: pymysql.Connection, include: Callable[[str, str], bool]
) -> dict[TableId, Table]:
    """Every base table outside the system schemas for which ``include(db, table)`` is
    true, keyed by ``(db, table)``. Reads ``information_schema`` in three queries."""
    columns = _query(connection, _COLUMNS_SQL, ())
    keys = _query(connection, _PRIMARY_KEYS_SQL + " ORDER BY SEQ_IN_INDEX", ())
    json_columns = _json_columns(connection, "", ())
    return _build(columns, keys, json_columns, include)


def load_table(connection: pymysql.Connection, database: str, table: str) -> Table | None:
    """The table ``database.table`` as it is now (after a DDL), or None if it does not
    exist (dropped or renamed away) or is not a base table."""
    args = (database, table)
    columns = _query(connection, _COLUMNS_SQL + _ONE_TABLE.format(schema="TABLE_SCHEMA"), args)
    keys = _query(
        connection,
        _PRIMARY_KEYS_SQL + _ONE_TABLE.format(schema="TABLE_SCHEMA") + " ORDER BY SEQ_IN_INDEX",
        args,
    )
    json_columns = _json_columns(connection, _ONE_TABLE.format(schema="CONSTRAINT_SCHEMA"), args)
    return _build(columns, keys, json_columns, lambda _db, _t: True).get(args)


def _query(connection: pymysql.Connection, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
    with connection.cursor(pymysql.cursors.Cursor) as cursor:
        cursor.execute(sql, args or None)
        return list(cursor.fetchall())


def _json_columns(
    connection: pymysql.Connection, where: str, args: Sequence[Any]
) -> set[tuple[str, str, str]]:
    try:
        rows = _query(connection, _JSON_CHECKS_SQL + where, args)
    except pymysql.MySQLError:  # MySQL: no such columns; JSON is a real type there
        return set()
    found = set()
    for schema, table, clause in rows:
        name = _json_valid_column(clause)
        if name is not None:
            found.add((schema, table, name))
    return found


def _json_valid_column(clause: str) -> str | None:
    """``json_valid(`col`)`` → ``col``; None for any other check."""
    prefix, suffix = "json_valid(`", "`)"
    if clause.startswith(prefix) and clause.endswith(suffix):
        return clause[len(prefix) : -len(suffix)].replace("``", "`")
    return None


def _build(
    columns: Iterable[tuple[Any, ...]],
    keys: Iterable[tuple[Any, ...]],
    json_columns: set[tuple[str, str, str]],
    include: Callable[[str, str], bool],
) -> dict[TableId, Table]:
    by_table: dict[TableId, list[Column]] = {}
    wanted: dict[TableId, bool] = {}
    for row in columns:
        key = (row[0], row[1])
        if key not in wanted:
            wanted[key] = include(*key)
        if wanted[key]:
            by_table.setdefault(key, []).append(_column(row, (*key, row[2]) in json_columns))
    primary: dict[TableId, list[str]] = {}
    for db, table, name in keys:
        primary.setdefault((db, table), []).append(name)
    return {
        key: Table(
            key[0],
            key[1],
            tuple(sorted(cols, key=lambda c: c.position)),
            tuple(primary.get(key, ())),
        )
        for key, cols in by_table.items()
    }


def _column(row: Sequence[Any], is_json: bool) -> Column:
    (_, _, name, position, data_type, column_type, nullable, precision, scale, fsp, charset,
     char_length) = row  # fmt: skip
    data_type = "json" if is_json else str(data_type).lower()
    column_type = str(column_type)
    bit_length = precision if data_type == "bit" else None
    return Column(
        name=name,
        position=int(position),
        data_type=data_type,
        column_type=column_type,
        unsigned="unsigned" in column_type.lower(),
        nullable=nullable == "YES",
        precision=_int(precision),
        scale=_int(scale),
        datetime_precision=_int(fsp),
        charset=charset,
        enum_values=parse_enum_values(column_type) if data_type in ("enum", "set") else (),
        length=_int(bit_length if bit_length is not None else char_length),
    )


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def parse_enum_values(column_type: str) -> tuple[str, ...]:
    """The members of ``enum('a','b')`` / ``set('x','it''s')`` in definition order
    (quotes doubled or backslash-escaped inside a member are unescaped)."""
    body = column_type[column_type.index("(") + 1 : column_type.rindex(")")]
    members: list[str] = []
    i = 0
    while i < len(body):
        if body[i] != "'":
            i += 1
            continue
        i, member = _quoted(body, i + 1)
        members.append(member)
    return tuple(members)


def _quoted(body: str, i: int) -> tuple[int, str]:
    """Read a quoted member starting after its opening quote; (index after it, text)."""
    out: list[str] = []
    while i < len(body):
        char = body[i]
        if char == "\\" and i + 1 < len(body):
            out.append(body[i + 1])
            i += 2
        elif char == "'" and body[i + 1 : i + 2] == "'":
            out.append("'")
            i += 2
        elif char == "'":
            return i + 1, "".join(out)
        else:
            out.append(char)
            i += 1
    return i, "".join(out)
