"""`Querier`: reads one table or custom query of the SQL source, batch by batch.

A querier runs one query per poll cycle and hands its rows out in batches of at most
``batch.max.rows`` across task polls (the result stays open meanwhile, as in
Confluent's JDBC source); when the rows run out it closes the result and is due
again at the schedule's next poll time. Its `Position` advances with each row
handed out, so a query re-run after an error continues after the last row returned.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from omconnect.connect.records import SourceRecord
from omconnect.connect.schema import SchemaError
from omconnect.connectors.sql.source_config import SqlSourceConfig
from omconnect.connectors.sql.source_database import (
    database_errors,
    mode_column_problem,
    reflect_table,
)
from omconnect.connectors.sql.source_offsets import Position, PositionError
from omconnect.connectors.sql.source_query import (
    ModeColumns,
    build_select,
    current_time_select,
    timestamp_upper_bound,
)
from omconnect.connectors.sql.source_schema import (
    RowMapping,
    driver_scales,
    inferred_row_mapping,
    table_row_mapping,
)
from omconnect.connectors.sql.source_tables import TableId
from omconnect.errors import FatalError

log = logging.getLogger(__name__)


@dataclass
class _OpenQuery:
    """A running query: its connection, result, and how to map its rows."""

    connection: sa.Connection
    result: sa.CursorResult[Any]
    mapping: RowMapping | None  # None: a custom query, mapped batch by batch
    columns: list[str]
    scales: list[int | None]  # decimal scales the driver reports (custom queries)


class Querier:
    """Reads ``target`` (a table, or a custom query's SQL) into ``topic``.

    ``partition`` is the records' source partition; ``position`` where reading
    resumes. Not thread-safe: the task calls it from its poll thread only (and
    `close` under the task's lock).
    """

    def __init__(
        self,
        target: TableId | str,
        topic: str,
        partition: dict[str, str],
        position: Position,
        config: SqlSourceConfig,
    ) -> None:
        self.target = target
        self.topic = topic
        self.partition = partition
        self.position = position
        self.next_poll: dt.datetime | None = None  # None: due now
        self.last_poll: dt.datetime | None = None
        self._config = config
        self._columns = ModeColumns(
            config.mode, config.incrementing_column_name, tuple(config.timestamp_column_names)
        )
        self._open: _OpenQuery | None = None

    @property
    def is_open(self) -> bool:
        """A query is running: `read` continues it."""
        return self._open is not None

    def describe(self) -> str:
        """The target, for messages."""
        return f"table {self.target}" if isinstance(self.target, TableId) else "the query"

    def open(self, engine: sa.Engine, now: dt.datetime) -> None:
        """Start this cycle's query (reflecting the table first: columns may change)."""
        self.last_poll = now
        connection = engine.connect()
        try:
            with database_errors(f"querying {self.describe()}"):
                self._open = self._execute(connection)
        except BaseException:
            connection.close()
            raise

    def _execute(self, connection: sa.Connection) -> _OpenQuery:
        mapping: RowMapping | None = None
        source: sa.Table | str
        if isinstance(self.target, TableId):
            source = reflect_table(connection, self.target)
            problem = mode_column_problem(source, self._config)
            if problem is not None:
                raise FatalError(str(problem))
            mapping = table_row_mapping(source, connection.dialect.name, self._config.timezone)
        else:
            source = self.target
        upper = None
        if self._config.mode.uses_timestamp:
            database_now = connection.execute(current_time_select()).scalar_one()
            upper = timestamp_upper_bound(database_now, self._config.timestamp_delay_interval_ms)
        statement = build_select(source, self._columns, self.position, upper)
        result = connection.execution_options(stream_results=True).execute(statement)
        columns = list(result.keys())
        description = result.cursor.description if result.cursor is not None else None
        scales = driver_scales(description, len(columns))
        return _OpenQuery(connection, result, mapping, columns, scales)

    def read(self, max_rows: int) -> list[SourceRecord]:
        """Up to ``max_rows`` records of the running query; closes it when it has no
        more rows (so `is_open` turns false)."""
        running = self._open
        if running is None:
            return []
        with database_errors(f"reading {self.describe()}"):
            rows = running.result.fetchmany(max_rows)
        if len(rows) < max_rows:
            self.close()
        mapping = running.mapping or inferred_row_mapping(
            None,
            running.columns,
            rows,
            running.scales,
            self._config.timezone,
        )
        return self._records(mapping, running.columns, rows)

    def _records(
        self, mapping: RowMapping, columns: list[str], rows: Sequence[Sequence[Any]]
    ) -> list[SourceRecord]:
        timestamp_at = [columns.index(n) for n in self._columns.timestamps if n in columns]
        incrementing = self._columns.incrementing
        incrementing_at = columns.index(incrementing) if incrementing in columns else None
        records: list[SourceRecord] = []
        for row in rows:
            try:
                value = mapping.to_struct(row)
                self.position = self.position.after_row(
                    self._config.mode,
                    [row[i] for i in timestamp_at],
                    None if incrementing_at is None else row[incrementing_at],
                )
            except (SchemaError, PositionError) as exc:
                self.close()
                raise FatalError(f"a row of {self.describe()}: {exc}") from exc
            records.append(
                SourceRecord(
                    self.topic,
                    None,
                    None,
                    None,
                    mapping.schema,
                    value,
                    source_partition=self.partition,
                    source_offset=self.position.to_offset(self._config.mode),
                )
            )
        return records

    def close(self) -> None:
        """End the running query, if any (its connection goes back to the pool)."""
        running, self._open = self._open, None
        if running is None:
            return
        try:
            running.result.close()
            running.connection.close()
        except sa.exc.SQLAlchemyError as exc:  # the connection may be gone already
            log.debug("closing the query of %s: %s", self.describe(), exc)
