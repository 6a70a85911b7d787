"""What differs between target databases, as pure functions (no connections).

`rules_for` says how values must be shaped for a dialect, `column_type` which SQL
type ``auto.create``/``auto.evolve`` give a Connect schema, `upsert_statement` builds
the dialect's insert-or-update and `session_setup_sql` the statement that makes a
session work in UTC. Dialects are named as SQLAlchemy names them (``mysql``,
``mariadb``, ``postgresql``, ``sqlite``, ...); others get portable choices and no
native upsert (the writer then updates, and inserts what was not there).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite
from sqlalchemy.sql.type_api import TypeEngine

from omconnect.connect.schema import DATE, DECIMAL, TIME, TIMESTAMP, Schema, Type

# Debezium's logical type names (see docs/connectors/cdc-events.md).
DBZ_DATE = "io.debezium.time.Date"
DBZ_TIME = "io.debezium.time.Time"
DBZ_MICRO_TIME = "io.debezium.time.MicroTime"
DBZ_NANO_TIME = "io.debezium.time.NanoTime"
DBZ_TIMESTAMP = "io.debezium.time.Timestamp"
DBZ_MICRO_TIMESTAMP = "io.debezium.time.MicroTimestamp"
DBZ_NANO_TIMESTAMP = "io.debezium.time.NanoTimestamp"
DBZ_ZONED_TIMESTAMP = "io.debezium.time.ZonedTimestamp"
DBZ_YEAR = "io.debezium.time.Year"
DBZ_BITS = "io.debezium.data.Bits"
DBZ_JSON = "io.debezium.data.Json"
DBZ_ENUM = "io.debezium.data.Enum"
DBZ_ENUM_SET = "io.debezium.data.EnumSet"

TIME_NAMES = frozenset({TIME, DBZ_TIME, DBZ_MICRO_TIME, DBZ_NANO_TIME})
LOCAL_TIMESTAMP_NAMES = frozenset({DBZ_TIMESTAMP, DBZ_MICRO_TIMESTAMP, DBZ_NANO_TIMESTAMP})
ZONED_TIMESTAMP_NAMES = frozenset({TIMESTAMP, DBZ_ZONED_TIMESTAMP})
DATE_NAMES = frozenset({DATE, DBZ_DATE})

DEFAULT_DECIMAL_PRECISION = 38
MYSQL_KEY_LENGTH = 255


@dataclass(frozen=True, slots=True)
class DialectRules:
    """How values are shaped for one dialect.

    ``time_as_timedelta``: TIME values are `datetime.timedelta` (MySQL's TIME spans
    ±838 h), else `datetime.time` (0 ≤ t < 24 h). ``aware_timestamps``: zoned
    timestamps stay timezone-aware (PostgreSQL TIMESTAMPTZ), else they are naive UTC.
    ``decimals_as_text``: decimals are written as their exact text (SQLite has no
    decimal type and would round them to 15 digits).
    """

    name: str
    time_as_timedelta: bool = False
    aware_timestamps: bool = False
    decimals_as_text: bool = False
    max_decimal_precision: int = DEFAULT_DECIMAL_PRECISION

    @property
    def is_mysql(self) -> bool:
        """MySQL or MariaDB."""
        return self.name in ("mysql", "mariadb")


def rules_for(dialect_name: str) -> DialectRules:
    """The rules of the dialect SQLAlchemy calls ``dialect_name``."""
    if dialect_name in ("mysql", "mariadb"):
        return DialectRules(dialect_name, time_as_timedelta=True, max_decimal_precision=65)
    if dialect_name == "postgresql":
        return DialectRules(dialect_name, aware_timestamps=True, max_decimal_precision=1000)
    if dialect_name == "sqlite":
        return DialectRules(dialect_name, decimals_as_text=True)
    return DialectRules(dialect_name)


def session_setup_sql(dialect_name: str) -> str | None:
    """A statement run on every new connection so timestamps are read and written in
    UTC (None where the dialect has no session time zone)."""
    if dialect_name in ("mysql", "mariadb"):
        return "SET time_zone = '+00:00'"
    if dialect_name == "postgresql":
        return "SET TIME ZONE 'UTC'"
    return None


def column_type(rules: DialectRules, schema: Schema, is_key: bool = False) -> TypeEngine[Any]:
    """The SQL type a column for ``schema`` gets when sink creates or adds it.
    ``is_key``: the column is part of the primary key (MySQL cannot index TEXT/BLOB,
    so key strings and bytes get VARCHAR(255)/VARBINARY(255) there)."""
    by_name = _logical_type(rules, schema)
    if by_name is not None:
        return by_name
    return _primitive_type(rules, schema.type, is_key)


def _logical_type(rules: DialectRules, schema: Schema) -> TypeEngine[Any] | None:
    name = schema.name or ""
    if name == DECIMAL:
        return _decimal_type(rules, schema)
    if name in DATE_NAMES:
        return sa.Date()
    if name in TIME_NAMES:
        return mysql.TIME(fsp=_fsp(name)) if rules.is_mysql else sa.Time()
    if name in LOCAL_TIMESTAMP_NAMES | ZONED_TIMESTAMP_NAMES:
        if rules.is_mysql:
            return mysql.DATETIME(fsp=_fsp(name))
        return sa.DateTime(timezone=name in ZONED_TIMESTAMP_NAMES)
    if name == DBZ_YEAR:
        return sa.SmallInteger()
    if name == DBZ_BITS:
        if rules.is_mysql:
            length = int(schema.params.get("length", "8") or 8)
            return mysql.VARBINARY(max(1, (length + 7) // 8))
        return sa.LargeBinary()
    if name == DBZ_JSON:
        if rules.is_mysql:
            return mysql.JSON()
        return postgresql.JSONB() if rules.name == "postgresql" else sa.Text()
    return None


def _fsp(name: str) -> int:
    """Fractional-second digits MySQL keeps for a time type (ms types: 3, else 6)."""
    return 3 if name in (TIME, TIMESTAMP, DBZ_TIME, DBZ_TIMESTAMP) else 6


def _decimal_type(rules: DialectRules, schema: Schema) -> TypeEngine[Any]:
    if rules.decimals_as_text:
        return sa.Text()
    scale = int(schema.params.get("scale", "0"))
    raw = schema.params.get("connect.decimal.precision")
    precision = int(raw) if raw and raw.isdigit() else DEFAULT_DECIMAL_PRECISION
    precision = min(max(precision, scale, 1), rules.max_decimal_precision)
    return sa.Numeric(precision, min(scale, precision))


def _primitive_type(rules: DialectRules, type_: Type, is_key: bool) -> TypeEngine[Any]:
    if type_ in (Type.INT8, Type.INT16):
        return sa.SmallInteger()
    if type_ is Type.INT32:
        return sa.Integer()
    if type_ is Type.INT64:
        return sa.BigInteger()
    if type_ is Type.FLOAT32:
        return mysql.FLOAT() if rules.is_mysql else sa.REAL()
    if type_ is Type.FLOAT64:
        return sa.Double()
    if type_ is Type.BOOLEAN:
        return sa.Boolean()
    if type_ is Type.BYTES:
        if rules.is_mysql:
            return mysql.VARBINARY(MYSQL_KEY_LENGTH) if is_key else mysql.LONGBLOB()
        return sa.LargeBinary()
    # STRING, and ARRAY/MAP/STRUCT written as JSON text
    if rules.is_mysql:
        return sa.String(MYSQL_KEY_LENGTH) if is_key else mysql.LONGTEXT()
    return sa.Text()


def upsert_statement(
    dialect_name: str, table: sa.Table, key_columns: Sequence[str], columns: Sequence[str]
) -> sa.Insert | None:
    """An INSERT that updates ``columns`` of the row whose ``key_columns`` exist already
    (for executemany with one parameter dict per row), or None if the dialect has no
    such statement. The key columns must be the table's primary key or unique."""
    updates = [c for c in columns if c not in key_columns]
    if dialect_name in ("sqlite", "postgresql"):
        module: Any = sqlite if dialect_name == "sqlite" else postgresql
        stmt = module.insert(table)
        index = [table.c[k] for k in key_columns]
        if not updates:
            return stmt.on_conflict_do_nothing(index_elements=index)
        excluded = stmt.excluded
        return stmt.on_conflict_do_update(
            index_elements=index, set_={c: excluded[c] for c in updates}
        )
    if dialect_name in ("mysql", "mariadb"):
        insert = mysql.insert(table)
        inserted = insert.inserted
        targets = updates or list(key_columns[:1])  # a no-op update keeps the row as is
        return insert.on_duplicate_key_update({c: inserted[c] for c in targets})
    return None
