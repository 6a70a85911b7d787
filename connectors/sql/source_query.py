"""The SELECT each poll of the SQL source runs (pure: builds SQLAlchemy Core).

A source is a reflected `sqlalchemy.Table` or the SQL text of a custom query, which is
wrapped as a derived table (``SELECT * FROM (<query>) AS omconnect_query``) so the
mode's conditions can be added to any SELECT. The conditions follow Confluent's JDBC
source, with ``ts`` the timestamp column (``COALESCE`` of several) and ``id`` the
incrementing column:

=========================  =========================================================
incrementing               ``id > :last_id ORDER BY id``
timestamp                  ``ts > :last_ts AND ts < :upper ORDER BY ts``
timestamp+incrementing     ``(ts > :last_ts OR (ts = :last_ts AND id > :last_id))
                           AND ts < :upper ORDER BY ts, id``
bulk                       no condition, no order
=========================  =========================================================

``:upper`` is the database's current time minus ``timestamp.delay.interval.ms``.
Before the first row there is no lower bound. Values are bound as parameters, never
written into the SQL.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from omconnect.connectors.sql.source_config import Mode
from omconnect.connectors.sql.source_offsets import Position

QUERY_ALIAS = "omconnect_query"


@dataclass(frozen=True)
class ModeColumns:
    """The mode and the columns it orders by."""

    mode: Mode
    incrementing: str | None = None
    timestamps: tuple[str, ...] = ()


def build_select(
    source: sa.Table | str,
    columns: ModeColumns,
    position: Position,
    upper: dt.datetime | None,
) -> sa.Select[Any]:
    """The SELECT reading the rows after ``position`` of ``source``, in position order;
    ``upper`` bounds the timestamp (timestamp modes; None: no bound). `KeyError` names
    a mode column missing from a table."""
    if isinstance(source, sa.Table):
        statement = sa.select(source)
    else:
        # Escaped colons: text() would take ":name" in the user's SQL for a parameter.
        sql = source.strip().rstrip(";").replace(":", "\\:")
        derived = sa.text(f"({sql}) AS {QUERY_ALIAS}")
        statement = sa.select(sa.literal_column("*")).select_from(derived)
    mode = columns.mode
    incrementing = _incrementing_column(source, columns) if mode.uses_incrementing else None
    timestamp = _timestamp_expression(source, columns) if mode.uses_timestamp else None
    conditions = _conditions(mode, timestamp, incrementing, position, upper)
    if conditions:
        statement = statement.where(*conditions)
    order = [c for c in (timestamp, incrementing) if c is not None]
    return statement.order_by(*order) if order else statement


def current_time_select() -> sa.Select[Any]:
    """SELECT of the database's current timestamp (the upper bound's base)."""
    return sa.select(sa.func.current_timestamp())


def timestamp_upper_bound(database_now: dt.datetime, delay_ms: int) -> dt.datetime:
    """The exclusive upper bound of timestamps read now: rows younger than the delay
    wait (their transactions may not all have committed)."""
    return database_now - dt.timedelta(milliseconds=delay_ms)


def _column(source: sa.Table | str, name: str, type_: sa.types.TypeEngine[Any]) -> Any:
    if isinstance(source, sa.Table):
        if name not in source.c:
            raise KeyError(f"table {source.fullname!r} has no column {name!r}")
        return source.c[name]
    return sa.column(name, type_)


def _incrementing_column(source: sa.Table | str, columns: ModeColumns) -> Any:
    if columns.incrementing is None:
        raise KeyError("the mode needs incrementing.column.name")
    return _column(source, columns.incrementing, sa.BigInteger())


def _timestamp_expression(source: sa.Table | str, columns: ModeColumns) -> Any:
    if not columns.timestamps:
        raise KeyError("the mode needs timestamp.column.name")
    parts = [_column(source, name, sa.DateTime()) for name in columns.timestamps]
    return parts[0] if len(parts) == 1 else sa.func.coalesce(*parts, type_=parts[0].type)


def _conditions(
    mode: Mode,
    timestamp: Any,
    incrementing: Any,
    position: Position,
    upper: dt.datetime | None,
) -> list[Any]:
    conditions: list[Any] = []
    last_ts, last_id = position.timestamp, position.incrementing
    if mode is Mode.INCREMENTING and last_id is not None:
        conditions.append(incrementing > last_id)
    elif mode is Mode.TIMESTAMP and last_ts is not None:
        conditions.append(timestamp > last_ts)
    elif mode is Mode.TIMESTAMP_INCREMENTING and last_ts is not None:
        if last_id is None:  # only a timestamp stored: re-read its rows, skip none
            conditions.append(timestamp >= last_ts)
        else:
            conditions.append(
                sa.or_(timestamp > last_ts, sa.and_(timestamp == last_ts, incrementing > last_id))
            )
    if mode.uses_timestamp and upper is not None:
        conditions.append(timestamp < upper)
    return conditions


def compiled_sql(statement: sa.Select[Any], dialect: sa.engine.Dialect) -> str:
    """``statement`` as SQL text for ``dialect`` with parameters inline (for logs and
    tests; never executed)."""
    return str(statement.compile(dialect=dialect, compile_kwargs={"literal_binds": True}))
