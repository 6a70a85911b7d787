"""Compare a MySQL/MariaDB source table with its replica in any SQL database.

Each database hands the same value back in its own Python form (MariaDB a
`timedelta` for TIME, PostgreSQL a `time`; a BIT(1) is bytes here and a boolean
there; JSON text is reformatted by JSONB). `canonical_rows` reads a table through
SQLAlchemy and turns every value into one canonical form chosen by the *source*
column's MySQL type, so two tables hold the same data exactly when their canonical
rows (and so their checksums) are equal.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
import json
from collections.abc import Callable, Mapping
from typing import Any

import sqlalchemy as sa

_EXACT = decimal.Context(prec=200)


def _decimal(value: Any) -> str:
    number = decimal.Decimal(str(value))
    return format(number.normalize(_EXACT), "f") if number else "0"


def _float(value: Any) -> str:
    return f"{float(value):.6g}"  # FLOAT: the server's 6 significant digits


def _double(value: Any) -> str:
    return repr(float(value))


def _time(value: Any) -> int:
    if isinstance(value, dt.timedelta):
        return value // dt.timedelta(microseconds=1)
    if isinstance(value, str):  # SQLite keeps TIME as text
        value = dt.time.fromisoformat(value)
    hours = value.hour * 3600 + value.minute * 60 + value.second
    return hours * 1_000_000 + value.microsecond


def _datetime(value: Any) -> str:
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value)
    if value.tzinfo is not None:
        value = value.astimezone(dt.UTC).replace(tzinfo=None)
    return str(value.isoformat())


def _date(value: Any) -> str:
    return value if isinstance(value, str) else str(value.isoformat())


def _bits(value: Any) -> int:
    if isinstance(value, bool | int):
        return int(value)
    return int.from_bytes(bytes(value), "big")


def _bytes(value: Any) -> str:
    return bytes(value).hex()


def _json(value: Any) -> str:
    parsed = json.loads(value) if isinstance(value, str | bytes) else value
    return json.dumps(parsed, sort_keys=True)


def _int(value: Any) -> int:
    return int(value)  # SQLite keeps a BIGINT UNSIGNED beyond int64 as exact text


def _text(value: Any) -> str:
    return str(value)


_BY_TYPE: Mapping[str, Callable[[Any], Any]] = {
    "tinyint": _int,
    "smallint": _int,
    "mediumint": _int,
    "int": _int,
    "bigint": _int,
    "year": _int,
    "decimal": _decimal,
    "float": _float,
    "double": _double,
    "time": _time,
    "datetime": _datetime,
    "timestamp": _datetime,
    "date": _date,
    "bit": _bits,
    "binary": _bytes,
    "varbinary": _bytes,
    "tinyblob": _bytes,
    "blob": _bytes,
    "mediumblob": _bytes,
    "longblob": _bytes,
    "json": _json,
    "enum": _text,
    "set": _text,
    "char": _text,
    "varchar": _text,
    "tinytext": _text,
    "text": _text,
    "mediumtext": _text,
    "longtext": _text,
}


def source_column_types(source: sa.Engine, database: str, table: str) -> dict[str, str]:
    """Column name -> MySQL data type (``decimal``, ``bit``, ...) of the source table;
    JSON columns of MariaDB (LONGTEXT with a json_valid check) count as ``json``."""
    with source.connect() as connection:
        rows = connection.execute(
            sa.text(
                "SELECT COLUMN_NAME, DATA_TYPE FROM information_schema.COLUMNS"
                " WHERE TABLE_SCHEMA = :db AND TABLE_NAME = :t ORDER BY ORDINAL_POSITION"
            ),
            {"db": database, "t": table},
        ).all()
        checks = connection.execute(
            sa.text(
                "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS"
                " WHERE CONSTRAINT_SCHEMA = :db AND TABLE_NAME = :t"
            ),
            {"db": database, "t": table},
        ).all()
    types = {str(name): str(kind).lower() for name, kind in rows}
    for (clause,) in checks:
        for name in types:
            if f"json_valid(`{name}`)" in str(clause):
                types[name] = "json"
    return types


def canonical_rows(
    engine: sa.Engine, table: str, types: Mapping[str, str], key: str = "id"
) -> list[tuple[Any, ...]]:
    """Every row of `table` (ordered by `key`), with the columns of `types` in their
    order, each value canonical for its source type. For a MySQL engine the session
    runs in UTC so TIMESTAMP values compare as instants."""
    columns = list(types)
    quote = engine.dialect.identifier_preparer.quote
    select = f"SELECT {', '.join(quote(c) for c in columns)} FROM {quote(table)}"
    with engine.connect() as connection:
        if engine.dialect.name in ("mysql", "mariadb"):
            connection.execute(sa.text("SET time_zone = '+00:00'"))
        rows = connection.execute(sa.text(f"{select} ORDER BY {quote(key)}")).all()
    convert = [_BY_TYPE.get(types[c], _plain) for c in columns]
    return [
        tuple(None if v is None else f(v) for f, v in zip(convert, row, strict=True))
        for row in rows
    ]


def _plain(value: Any) -> Any:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, decimal.Decimal):
        return _decimal(value)
    return value


def checksum(rows: list[tuple[Any, ...]]) -> str:
    """SHA-256 of the canonical rows."""
    return hashlib.sha256(json.dumps(rows, default=str).encode()).hexdigest()


def first_difference(left: list[tuple[Any, ...]], right: list[tuple[Any, ...]]) -> str:
    """A readable account of where two canonical row lists first differ."""
    for index, (a, b) in enumerate(zip(left, right, strict=False)):
        if a != b:
            return f"row {index}: {a!r} != {b!r}"
    return f"{len(left)} rows vs {len(right)} rows"
