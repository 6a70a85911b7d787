"""`SqlSinkConnector`: writes records to any SQLAlchemy database, like Confluent's JDBC
sink and Debezium's JDBC sink (see docs/connectors/sql-sink.md).

Records are read into row changes (`ChangeReader`): Debezium change events, flat
structs and schemaless maps. `SqlSinkTask.put` buffers them and writes every
``batch.size`` records in one transaction (`Writer`); `flush` writes and commits the
rest, so the runtime commits consumer offsets only for records the database has
committed. Writes are idempotent (upsert and delete by key), so the records replayed
after a crash leave the tables as they were. A record that cannot be read or that
the database rejects goes to the errant record reporter (the dead-letter queue), or
fails the task with a `RecordError` when there is none.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from concurrent.futures import Future
from typing import Any, ClassVar

import sqlalchemy as sa

from omconnect.connect.config import PluginConfig, parse_config
from omconnect.connect.connector import (
    ErrantRecordReporter,
    SinkConnector,
    SinkTask,
    TopicPartition,
)
from omconnect.connect.records import SinkRecord
from omconnect.connectors.sql.dialects import rules_for, session_setup_sql
from omconnect.connectors.sql.sink_changes import Change, ChangeReader
from omconnect.connectors.sql.sink_config import SqlSinkConfig
from omconnect.connectors.sql.sink_tables import Tables
from omconnect.connectors.sql.sink_writer import Writer
from omconnect.errors import ConfigError, RecordError

VERSION = "1.0.0"
log = logging.getLogger(__name__)


class SqlSinkConnector(SinkConnector):
    """Writes its topics to tables of one database; tasks share the partitions."""

    config_model: ClassVar[type[PluginConfig]] = SqlSinkConfig

    def version(self) -> str:
        return VERSION

    def start(self, config: Mapping[str, str]) -> None:
        parse_config(SqlSinkConfig, config)
        self._config = dict(config)

    def task_class(self) -> type[SinkTask]:
        return SqlSinkTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        return [dict(self._config) for _ in range(max_tasks)]

    def stop(self) -> None:
        pass


def create_engine(config: SqlSinkConfig) -> sa.Engine:
    """An engine for ``config`` whose sessions run in UTC. Does not connect yet.
    `ConfigError` naming ``connection.url`` for an unknown dialect or driver."""
    try:
        engine = sa.create_engine(config.url(), pool_pre_ping=True)
    except (sa.exc.ArgumentError, ImportError) as exc:
        raise ConfigError("connection.url", f"cannot be used: {exc}") from None
    setup = session_setup_sql(engine.dialect.name)
    if setup is not None:

        def run_setup(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute(setup)
            cursor.close()
            dbapi_connection.commit()  # PostgreSQL's SET is transactional

        sa.event.listen(engine, "connect", run_setup)
    return engine


class SqlSinkTask(SinkTask):
    """Buffers changes, writes them in batches, commits in `flush`."""

    def version(self) -> str:
        return VERSION

    def start(self, config: Mapping[str, str]) -> None:
        self._config = parse_config(SqlSinkConfig, config)
        self._engine = create_engine(self._config)
        rules = rules_for(self._engine.dialect.name)
        self._reader = ChangeReader(self._config, rules)
        tables = Tables(self._engine, rules, self._config)
        self._writer = Writer(self._engine, tables, self._config.insert_mode, self._report)
        self._reporter: ErrantRecordReporter | None = self.context.errant_record_reporter()
        self._reported: list[Future[None]] = []
        self._pending: list[Change] = []

    def put(self, records: list[SinkRecord]) -> None:
        """Buffer ``records``; write the buffer once it holds ``batch.size`` changes.
        If writing raises `RetriableError`, the buffer is as before this call (the
        runtime delivers the same records again)."""
        batch = self._pending + [c for c in map(self._read, records) if c is not None]
        if len(batch) >= self._config.batch_size:
            self._writer.write(batch)
            batch = []
        self._pending = batch

    def flush(self, offsets: dict[TopicPartition, int]) -> None:
        """Write and commit the buffer; wait until the bad records reported so far were
        handed over."""
        self._writer.write(self._pending)
        self._pending = []
        for future in self._reported:
            future.result()
        self._reported = []

    def close(self, partitions: list[TopicPartition]) -> None:
        revoked = set(partitions)
        self._pending = [c for c in self._pending if c.record.topic_partition not in revoked]

    def stop(self) -> None:
        self._engine.dispose()

    def _read(self, record: SinkRecord) -> Change | None:
        try:
            return self._reader.read(record)
        except RecordError as exc:
            self._report(record, exc)
            return None

    def _report(self, record: SinkRecord, error: RecordError) -> None:
        """Send a bad record to the reporter; without one, fail with ``error``."""
        if self._reporter is None:
            raise error
        log.warning("record %s@%d set aside: %s", record.topic_partition, record.offset, error)
        self._reported.append(self._reporter.report(record, error))
