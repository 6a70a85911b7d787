"""Writes a batch of changes in one transaction.

`Writer.write` plans the batch (`plan_batch`), makes sure every table it upserts
into exists with its columns (DDL first, see `Tables`), then in one transaction per
table: truncate, delete the deleted keys, upsert (or insert/update) the rows, each
kind as executemany over rows with the same columns. Each executemany runs in a
savepoint; if the database rejects it, its rows are tried one by one (each in its
own savepoint) and the rows it still rejects go to ``report`` with the reason, so
one bad row does not fail the batch. A lost connection is a `RetriableError`: the
transaction was rolled back and the whole batch may be written again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa

from omconnect.connect.records import SinkRecord
from omconnect.connectors.sql.dialects import upsert_statement
from omconnect.connectors.sql.sink_changes import Change, Column
from omconnect.connectors.sql.sink_config import InsertMode
from omconnect.connectors.sql.sink_plan import TablePlan, plan_batch
from omconnect.connectors.sql.sink_tables import Tables
from omconnect.errors import RecordError, RetriableError

log = logging.getLogger(__name__)

Report = Callable[[SinkRecord, RecordError], None]
"""Sets one bad record aside (dead-letter queue), or raises to fail the task."""


class Writer:
    """Applies batches of changes to one database."""

    def __init__(
        self, engine: sa.Engine, tables: Tables, insert_mode: InsertMode, report: Report
    ) -> None:
        self._engine = engine
        self._tables = tables
        self._mode = insert_mode
        self._report = report

    def write(self, changes: Sequence[Change]) -> None:
        """Apply ``changes`` and commit; on return they are durable. Raises
        `RetriableError` if the connection failed (nothing was committed), `FatalError`
        if a table cannot be made to fit, or what ``report`` raises."""
        if not changes:
            return
        with _retriable():
            targets = [(plan, self._target(plan)) for plan in plan_batch(changes)]
            with self._engine.begin() as connection:
                for plan, table in targets:
                    if table is not None:
                        self._apply(connection, plan, table)

    def _target(self, plan: TablePlan) -> sa.Table | None:
        """The table of ``plan``, created or evolved as its upserts need; None when it
        does not exist and there is only deleting to do."""
        if not plan.upserts:
            return self._tables.get(plan.table)
        table = self._tables.ensure(plan.table, _columns(plan.upserts))
        known = set(table.c.keys())
        fitting = []
        for change in plan.upserts:
            unknown = [c for c in change.row if c not in known]
            if unknown:
                self._report(
                    change.record, RecordError(f"table {table.name!r} has no columns {unknown}")
                )
            else:
                fitting.append(change)
        plan.upserts = fitting
        return table

    def _apply(self, connection: sa.Connection, plan: TablePlan, table: sa.Table) -> None:
        if plan.truncate:
            connection.execute(sa.delete(table))
        for group in _groups(plan.deletes, key_only=True):
            self._execute(connection, _delete_statement(table, group[0]), group, _key_params)
        for group in _groups(plan.upserts, key_only=False):
            self._write_rows(connection, table, group)

    def _write_rows(self, connection: sa.Connection, table: sa.Table, group: list[Change]) -> None:
        first = group[0]
        if self._mode == "update":
            self._execute(connection, _update_statement(table, first), group, _update_params)
            return
        statement: sa.Executable | None = sa.insert(table)
        if self._mode == "upsert":
            key, columns = list(first.key), list(first.row)
            statement = upsert_statement(connection.dialect.name, table, key, columns)
        if statement is None:  # a dialect without a native upsert
            self._execute(connection, _update_statement(table, first), group, _update_params)
            self._insert_missing(connection, table, group)
        else:
            self._execute(connection, statement, group, _row_params)

    def _insert_missing(
        self, connection: sa.Connection, table: sa.Table, group: list[Change]
    ) -> None:
        for change in group:
            where = sa.and_(*(table.c[k] == v for k, v in change.key.items()))
            exists = connection.execute(sa.select(sa.literal(1)).where(where)).first()
            if exists is None:
                self._execute(connection, sa.insert(table), [change], _row_params)

    def _execute(
        self,
        connection: sa.Connection,
        statement: sa.Executable,
        group: list[Change],
        params: Callable[[Change], dict[str, Any]],
    ) -> None:
        """``statement`` for every change of ``group``; rows the database rejects go to
        ``report`` (after an executemany failed, each row is tried on its own)."""
        try:
            with connection.begin_nested():
                connection.execute(statement, [params(c) for c in group])
            return
        except sa.exc.DBAPIError as exc:
            if exc.connection_invalidated or len(group) == 1:
                _reject(exc, group[0], self._report)
                return
            log.info("executemany of %d rows failed, trying one by one: %s", len(group), exc.orig)
        for change in group:
            try:
                with connection.begin_nested():
                    connection.execute(statement, params(change))
            except sa.exc.DBAPIError as exc:
                _reject(exc, change, self._report)


def _reject(error: sa.exc.DBAPIError, change: Change, report: Report) -> None:
    if error.connection_invalidated:
        raise RetriableError(f"connection to the database lost: {error.orig}") from error
    report(change.record, RecordError(f"the database rejected the row: {error.orig}"))


@contextmanager
def _retriable() -> Iterator[None]:
    """Connection failures as `RetriableError`: a connection that broke, or one that
    could not be opened (an error without a statement)."""
    try:
        yield
    except sa.exc.DBAPIError as exc:
        unreachable = exc.statement is None and isinstance(exc, sa.exc.OperationalError)
        if exc.connection_invalidated or unreachable or isinstance(exc, sa.exc.InterfaceError):
            raise RetriableError(f"cannot reach the database: {exc.orig}") from exc
        raise
    except sa.exc.DisconnectionError as exc:
        raise RetriableError(f"cannot connect to the database: {exc}") from exc


def _columns(changes: list[Change]) -> list[Column] | None:
    """The union of the changes' column schemas (first seen wins), or None if none
    of them has a schema."""
    by_name: dict[str, Column] = {}
    for change in changes:
        for column in change.columns or ():
            by_name.setdefault(column.name, column)
    return list(by_name.values()) if by_name else None


def _groups(changes: list[Change], key_only: bool) -> list[list[Change]]:
    """``changes`` grouped by the columns they bind (one executemany per group)."""
    groups: dict[tuple[str, ...], list[Change]] = {}
    for change in changes:
        names = tuple(change.key) if key_only else (*change.key, "|", *change.row)
        groups.setdefault(names, []).append(change)
    return list(groups.values())


def _key_where(table: sa.Table, change: Change) -> sa.ColumnElement[bool]:
    return sa.and_(*(table.c[k] == sa.bindparam(f"k{i}") for i, k in enumerate(change.key)))


def _delete_statement(table: sa.Table, change: Change) -> sa.Delete:
    return sa.delete(table).where(_key_where(table, change))


def _update_statement(table: sa.Table, change: Change) -> sa.Update:
    values: dict[str, Any] = {c: sa.bindparam(f"v{i}") for i, c in enumerate(_non_key(change))}
    if not values:  # nothing but the key: set it to itself, a no-op that matches
        values = {k: table.c[k] for k in change.key}
    return sa.update(table).where(_key_where(table, change)).values(values)


def _non_key(change: Change) -> list[str]:
    return [c for c in change.row if c not in change.key]


def _key_params(change: Change) -> dict[str, Any]:
    return {f"k{i}": v for i, v in enumerate(change.key.values())}


def _update_params(change: Change) -> dict[str, Any]:
    params = _key_params(change)
    params.update({f"v{i}": change.row[c] for i, c in enumerate(_non_key(change))})
    return params


def _row_params(change: Change) -> dict[str, Any]:
    return change.row
