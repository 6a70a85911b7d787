"""`SqlSourceConnector`: a query-based source for any SQLAlchemy database, like
Confluent's JDBC source connector (same config keys, modes and offsets).

Each selected table (``table.include.list``/``table.exclude.list``; all tables by
default) or the one custom ``query`` is read by repeated SELECTs, in one of four
modes: ``bulk`` reads everything each poll; ``incrementing`` the rows whose
incrementing column is above the last one read; ``timestamp`` those with a later
timestamp; ``timestamp+incrementing`` orders by both, so updated rows are seen
again and none is skipped or repeated (see `source_query`). Polls repeat every
``poll.interval.ms`` or at the ``poll.cron`` times.

A record's value is a `Struct` of the row (schema from the table's columns, see
`source_schema`), its key is None, its topic ``topic.prefix`` + table name (with
``query``: ``topic.prefix``). Its source partition is ``{"table": name}`` (or
``{"query": <the SQL>}``) and its source offset the row's position (see
`source_offsets`), so a restarted task resumes right after the last committed row.
The connector spreads the tables over ``tasks.max`` tasks.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections.abc import Callable, Mapping
from typing import ClassVar

import sqlalchemy as sa

from omconnect.connect.config import KeyError_, PluginConfig
from omconnect.connect.connector import SourceConnector, SourceTask
from omconnect.connect.records import SourceRecord, partition_key
from omconnect.connectors.sql.source_config import (
    SqlSourceConfig,
    load_source_config,
    source_config_errors,
)
from omconnect.connectors.sql.source_database import (
    create_source_engine,
    database_errors,
    list_tables,
    mode_column_problem,
    reflect_table,
    safe_url,
)
from omconnect.connectors.sql.source_monitor import TableMonitor
from omconnect.connectors.sql.source_offsets import Position
from omconnect.connectors.sql.source_querier import Querier
from omconnect.connectors.sql.source_schedule import PollSchedule, seconds_until
from omconnect.connectors.sql.source_tables import (
    TASK_TABLES_KEY,
    TableId,
    decode_tables,
    encode_tables,
    group_tables,
)
from omconnect.errors import ConfigError

log = logging.getLogger(__name__)

VERSION = "1.0.0"
_MAX_WAIT_S = 1.0  # poll returns at least this often while no table is due


class SqlSourceConnector(SourceConnector):
    """Finds the tables to read and shares them among the tasks."""

    config_model: ClassVar[type[PluginConfig]] = SqlSourceConfig

    def version(self) -> str:
        return VERSION

    def validate(self, config: Mapping[str, str]) -> list[KeyError_]:
        """Each key, then the rules spanning keys (never connects)."""
        return source_config_errors(config)

    def start(self, config: Mapping[str, str]) -> None:
        """Parse the config and, unless it has a ``query``, list the tables to read and
        check their mode columns. `ConfigError` naming the key when a table lacks a
        mode column (or it is nullable with ``validate.non.null``); `RetriableError`
        when the database cannot be reached. Once initialized by the runtime, watches
        for tables created or dropped (``table.poll.interval.ms``)."""
        self._raw = dict(config)
        self._config = load_source_config(config)
        self._lock = threading.Lock()
        self._tables: list[TableId] = []
        self._monitor: TableMonitor | None = None
        if self._config.query is not None:
            return
        self._engine = create_source_engine(self._config)
        try:
            self._tables = self._list_checked_tables()
        except BaseException:
            self._engine.dispose()
            raise
        if not self._tables:
            log.warning("no table of %s is selected: nothing to read", safe_url(self._config))
        interval_s = self._config.table_poll_interval_ms / 1000
        if interval_s > 0 and getattr(self, "context", None) is not None:
            self._monitor = TableMonitor(
                self._list_tables, self._tables, interval_s, self._tables_changed
            )
            self._monitor.start()

    def _list_checked_tables(self) -> list[TableId]:
        with (
            database_errors(f"listing the tables of {safe_url(self._config)}"),
            self._engine.connect() as connection,
        ):
            tables = list_tables(connection, self._config)
            for table in tables:
                problem = mode_column_problem(reflect_table(connection, table), self._config)
                if problem is not None:
                    raise problem
        return tables

    def _list_tables(self) -> list[TableId]:
        with (
            database_errors(f"listing the tables of {safe_url(self._config)}"),
            self._engine.connect() as connection,
        ):
            return list_tables(connection, self._config)

    def _tables_changed(self, tables: list[TableId]) -> None:
        with self._lock:
            self._tables = tables
        self.context.request_task_reconfiguration()

    def task_class(self) -> type[SourceTask]:
        return SqlSourceTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        """One task for a ``query``; else the tables in at most ``max_tasks``
        contiguous groups (none when no table is selected)."""
        if self._config.query is not None:
            return [dict(self._raw)]
        with self._lock:
            tables = list(self._tables)
        return [
            {**self._raw, TASK_TABLES_KEY: encode_tables(group)}
            for group in group_tables(tables, max_tasks)
        ]

    def stop(self) -> None:
        """Stop watching the tables and close the connections."""
        if self._monitor is not None:
            self._monitor.stop()
        engine = getattr(self, "_engine", None)
        if engine is not None:
            engine.dispose()


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class SqlSourceTask(SourceTask):
    """Polls its tables (or the query) in turn, each on its own schedule."""

    def __init__(self, clock: Callable[[], dt.datetime] = _utc_now) -> None:
        self.clock = clock
        """The current time, timezone-aware."""
        self._lock = threading.Lock()  # held by poll; stop releases under it
        self._stopping = threading.Event()
        self._queriers: list[Querier] = []
        self._current: Querier | None = None  # the querier whose query is open
        self._engine: sa.Engine | None = None

    def version(self) -> str:
        return VERSION

    def start(self, config: Mapping[str, str]) -> None:
        """Read the committed offsets of this task's tables and resume after them."""
        self._config = load_source_config(config)
        self._schedule = PollSchedule(
            dt.timedelta(milliseconds=self._config.poll_interval_ms), self._config.poll_cron
        )
        self._queriers = self._make_queriers(config)
        stored = self.context.offset_reader.offsets([q.partition for q in self._queriers])
        for querier in self._queriers:
            offset = stored.get(partition_key(querier.partition))
            querier.position = Position.from_offset(self._config.mode, offset)
            if self._config.poll_cron:
                querier.next_poll = self._schedule.next_poll(None, self.clock())
        self._engine = create_source_engine(self._config)

    def _make_queriers(self, config: Mapping[str, str]) -> list[Querier]:
        prefix = self._config.topic_prefix
        if self._config.query is not None:
            query = self._config.query
            return [Querier(query, prefix, {"query": query}, Position(), self._config)]
        try:
            tables = decode_tables(config.get(TASK_TABLES_KEY, "[]"))
        except ValueError as exc:
            raise ConfigError(TASK_TABLES_KEY, str(exc)) from None
        return [
            Querier(table, prefix + table.name, {"table": str(table)}, Position(), self._config)
            for table in tables
        ]

    def poll(self) -> list[SourceRecord]:
        """The next batch of the table being read, else of the first table due; waits
        (at most a second) when none is due. Database errors: see `database_errors`."""
        with self._lock:
            if self._stopping.is_set():
                return []
            try:
                records, wait_s = self._poll_once()
            finally:
                if self._stopping.is_set():
                    self._release()
        if wait_s > 0:
            self._stopping.wait(min(wait_s, _MAX_WAIT_S))
        return records

    def _poll_once(self) -> tuple[list[SourceRecord], float]:
        """The records of one step, and how long to wait before the next (seconds)."""
        if self._current is None:
            if not self._queriers:
                return [], _MAX_WAIT_S
            now = self.clock()
            due = min(self._queriers, key=lambda q: q.next_poll or now)
            if due.next_poll is not None and due.next_poll > now:
                return [], seconds_until(due.next_poll, now)
            if self._engine is None:
                raise RuntimeError("poll before start")
            due.open(self._engine, now)
            self._current = due
        current = self._current
        try:
            records = current.read(self._config.batch_max_rows)
        except BaseException:
            # Re-run the query at the next poll, after the rows already returned.
            current.close()
            self._current = None
            raise
        if not current.is_open:
            self._finish(current)
        return records, 0.0

    def _finish(self, querier: Querier) -> None:
        """The cycle of ``querier`` ended: it is due again per the schedule."""
        querier.close()
        querier.next_poll = self._schedule.next_poll(querier.last_poll, self.clock())
        self._current = None

    def stop(self) -> None:
        """Make `poll` return; release the database now if no poll runs, else when it
        returns."""
        self._stopping.set()
        if self._lock.acquire(blocking=False):
            try:
                self._release()
            finally:
                self._lock.release()

    def _release(self) -> None:
        for querier in self._queriers:
            querier.close()
        self._current = None
        if self._engine is not None:
            self._engine.dispose()
