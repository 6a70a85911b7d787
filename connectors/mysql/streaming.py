"""`ChangeStreamer`: binlog events (`binlog.Event`) → source records.

It owns the `TransactionTracker` (so every record gets the offset a restart needs)
and the table metadata, which it reloads after DDL through the ``load_table`` /
``load_all`` callables it is given (the I/O stays with the task). No sockets here:
the task reads the events and hands them in.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from omconnect.connect.records import SourceRecord
from omconnect.connect.schema import Struct

from . import incremental as inc
from . import metadata
from .binlog import Begin, Commit, Event, Heartbeat, Position, Rotate, Rows, Statement
from .events import EventBuilder
from .filters import Filters
from .incremental import ChunkRow, IncrementalSnapshot
from .offsets import BinlogOffset, TransactionTracker
from .tables import Table, TableId
from .values import RowConverter, converter, restore_empty_sets

log = logging.getLogger(__name__)

LoadTable = Callable[[str, str], Table | None]
LoadAll = Callable[[], dict[TableId, Table]]


@dataclass(frozen=True, slots=True)
class StreamSettings:
    """What the streamer needs of the config."""

    topic_prefix: str
    include_schema_changes: bool
    provide_transaction_metadata: bool


class _Transaction:
    """Counters of the open transaction for the transaction metadata."""

    def __init__(self, transaction_id: str) -> None:
        self.id = transaction_id
        self.total = 0
        self.per_table: dict[str, int] = {}

    def next_order(self, collection: str) -> dict[str, Any]:
        self.total += 1
        self.per_table[collection] = self.per_table.get(collection, 0) + 1
        return {
            "id": self.id,
            "total_order": self.total,
            "data_collection_order": self.per_table[collection],
        }


class ChangeStreamer:
    """Turns the events of one binlog reader after another into records."""

    def __init__(
        self,
        settings: StreamSettings,
        builder: EventBuilder,
        filters: Filters,
        tables: dict[TableId, Table],
        load_table: LoadTable,
        load_all: LoadAll,
        start: BinlogOffset,
        *,
        incremental: IncrementalSnapshot | None = None,
        signal_table: TableId | None = None,
    ) -> None:
        self.settings = settings
        self.builder = builder
        self.filters = filters
        self.tables = tables
        self._load_table = load_table
        self._load_all = load_all
        self.partition = {"server": settings.topic_prefix}
        self.tracker = TransactionTracker(start)
        self._transaction: _Transaction | None = None
        # Resumed inside a transaction: its BEGIN was written before the restart.
        self._begun_before_restart = start.mid_transaction
        self.incremental = incremental or IncrementalSnapshot()
        self.signal_table = signal_table
        self._key_converters: dict[TableId, tuple[Table, RowConverter]] = {}

    def restart(self) -> BinlogOffset:
        """Prepare for a new reader after a lost connection: where it must start. The
        open transaction is read again from its start, its emitted rows skipped."""
        offset = self.tracker.offset()
        self.tracker = TransactionTracker(offset)
        self._begun_before_restart = offset.mid_transaction or self._transaction is not None
        return offset

    def offset(self) -> BinlogOffset:
        """The offset of a record written now (e.g. a heartbeat)."""
        return self.tracker.offset()

    def _offset_map(self, offset: BinlogOffset) -> dict[str, Any]:
        """The stored offset: the binlog position and the incremental snapshot's state."""
        return {**offset.as_offset(), **self.incremental.as_offset()}

    def dedup_key(self, table: Table, row: Mapping[str, Any]) -> tuple[Any, ...]:
        """The primary key of a raw row (SELECT or binlog form) in one comparable form."""
        cached = self._key_converters.get((table.database, table.name))
        if cached is None or cached[0] is not table:
            cached = (table, converter(table, self.filters, table.primary_key))
            self._key_converters[(table.database, table.name)] = cached
        return tuple(cached[1](row).values())

    # -- events ---------------------------------------------------------------------
    def handle(self, event: Event, ts_sec: int) -> list[SourceRecord]:
        """The records of one event (often none)."""
        self.tracker.event_time(ts_sec)
        if isinstance(event, Rows):
            return self._rows(event)
        if isinstance(event, Begin):
            self.tracker.begin(event.pos, event.gtid, event.single_statement)
            return []
        if isinstance(event, Commit):
            return self._commit(event.end_pos)
        if isinstance(event, Statement):
            return self._statement(event)
        if isinstance(event, Rotate):
            self.tracker.rotate(event.file, event.pos)
        if isinstance(event, Position):
            self.tracker.position(event.end_pos)
        if isinstance(event, Heartbeat):
            return []
        return []

    def _rows(self, event: Rows) -> list[SourceRecord]:
        tracker = self.tracker
        indexes = tracker.row_event(len(event.rows))
        if (event.database, event.table) == self.signal_table:
            return self._signal_rows(event, indexes)
        table = None
        if len(indexes) and self.filters.include_table(event.database, event.table):
            table = self._table(event.database, event.table)
        snapshotting = table is not None and self.incremental.current == (
            event.database,
            event.table,
        )
        records: list[SourceRecord] = []
        for index in indexes:
            offset = self._offset_map(tracker.row_emitted())
            if table is None:
                continue
            before, after = _images(event.op, event.rows[index])
            if snapshotting:
                for image in (before, after):
                    if image is not None:
                        self.incremental.changed(
                            (table.database, table.name), self.dedup_key(table, image)
                        )
            source = {
                "ts_ms": tracker.ts_sec * 1000,
                "snapshot": "false",
                "db": table.database,
                "table": table.name,
                "server_id": event.server_id,
                "gtid": tracker.gtid or None,
                "file": tracker.file,
                "pos": event.pos,
                "row": index,
            }
            transaction = self._transaction_block(table, records, offset)
            for key, value in self.builder.change_events(
                table, event.op, before, after, source, _now_ms(), transaction
            ):
                records.append(self._record(table, key, value, offset))
        tracker.row_event_done()
        return records

    # -- signals and the incremental snapshot ------------------------------------------
    def _signal_rows(self, event: Rows, indexes: range) -> list[SourceRecord]:
        """Rows of the signal table: never records of their own; an inserted
        execute/stop signal changes the incremental snapshot, a watermark of the
        current window may emit its chunk."""
        records: list[SourceRecord] = []
        for index in indexes:
            self.tracker.row_emitted()
            if event.op != "c":
                continue
            row = event.rows[index]["values"]
            try:
                signal = inc.parse_signal(row)
            except ValueError as exc:
                log.warning("signal ignored: %s", exc)
                continue
            if signal.type in (inc.WINDOW_OPEN, inc.WINDOW_CLOSE):
                chunk = self.incremental.watermark(signal.id)
                records.extend(self._read_records(chunk, event.server_id))
            elif signal.type in (inc.EXECUTE, inc.STOP):
                self._apply_signal(signal)
            else:
                log.warning("signal %s of unknown type %r ignored", signal.id, signal.type)
        self.tracker.row_event_done()
        return records

    def _apply_signal(self, signal: inc.Signal) -> None:
        if signal.snapshot_type != "incremental":
            log.warning("signal %s: only incremental snapshots are supported", signal.id)
            return
        tables: list[TableId] = []
        for name in signal.collections:
            try:
                database, table = inc.parse_table_name(name)
            except ValueError as exc:
                log.warning("signal %s: %s", signal.id, exc)
                continue
            if self.filters.include_table(database, table) and self._table(database, table):
                tables.append((database, table))
            else:
                log.warning("signal %s: %s is not a captured table", signal.id, name)
        if signal.type == inc.STOP:
            self.incremental.stop(tables if signal.collections else None)
            log.info("incremental snapshot stopped for %s", signal.collections or "all tables")
            return
        added = self.incremental.execute(tables)
        log.info("incremental snapshot of %s requested (signal %s)", added, signal.id)

    def _read_records(self, chunk: list[ChunkRow], server_id: int) -> list[SourceRecord]:
        """The read (op ``r``) records of the rows a closed window left."""
        records: list[SourceRecord] = []
        tracker = self.tracker
        for item in chunk:
            table = self.tables.get(item.table)
            if table is None:
                continue
            offset = {**tracker.offset().as_offset(), **item.offset}
            source = {
                "ts_ms": tracker.ts_sec * 1000,
                "snapshot": "incremental",
                "db": table.database,
                "table": table.name,
                "server_id": server_id,
                "gtid": tracker.gtid or None,
                "file": tracker.file,
                "pos": tracker.restart_pos,
                "row": 0,
            }
            for key, value in self.builder.change_events(
                table, "r", None, item.row, source, _now_ms()
            ):
                records.append(self._record(table, key, value, offset))
        return records

    def _record(
        self, table: Table, key: Struct | None, value: Struct | None, offset: Mapping[str, Any]
    ) -> SourceRecord:
        schemas = self.builder.schemas(table)
        return SourceRecord(
            self.builder.topic(table),
            None,
            schemas.key if key is not None else None,
            key,
            schemas.envelope if value is not None else None,
            value,
            timestamp=self.tracker.ts_sec * 1000,
            source_partition=self.partition,
            source_offset=offset,
        )

    def _table(self, database: str, name: str) -> Table | None:
        table = self.tables.get((database, name))
        if table is None:
            table = self._load_table(database, name)
            if table is None:
                log.warning("rows of %s.%s skipped: the table no longer exists", database, name)
                return None
            self.tables[(database, name)] = table
        return table

    # -- transactions ---------------------------------------------------------------
    def _transaction_block(
        self, table: Table, records: list[SourceRecord], offset: Mapping[str, Any]
    ) -> dict[str, Any] | None:
        if not self.settings.provide_transaction_metadata:
            return None
        if self._transaction is None:
            tracker = self.tracker
            transaction_id = tracker.gtid or f"{tracker.file}:{tracker.restart_pos}"
            self._transaction = _Transaction(transaction_id)
            if not self._begun_before_restart:
                key, value = metadata.transaction_record("BEGIN", transaction_id, _now_ms())
                records.append(self._metadata_record("transaction", key, value, offset))
        return self._transaction.next_order(f"{table.database}.{table.name}")

    def _commit(self, end_pos: int) -> list[SourceRecord]:
        self.tracker.commit(end_pos)
        self._begun_before_restart = False
        transaction, self._transaction = self._transaction, None
        if transaction is None:
            return []
        key, value = metadata.transaction_record(
            "END", transaction.id, _now_ms(), transaction.per_table
        )
        offset = self._offset_map(self.tracker.offset())
        return [self._metadata_record("transaction", key, value, offset)]

    def _metadata_record(
        self, suffix: str, key: Struct, value: Struct, offset: Mapping[str, Any]
    ) -> SourceRecord:
        topic = self.settings.topic_prefix + (f".{suffix}" if suffix else "")
        return SourceRecord(
            topic,
            None,
            key.schema,
            key,
            value.schema,
            value,
            timestamp=self.tracker.ts_sec * 1000,
            source_partition=self.partition,
            source_offset=offset,
        )

    # -- DDL --------------------------------------------------------------------------
    def _statement(self, event: Statement) -> list[SourceRecord]:
        if not metadata.is_ddl(event.sql):
            completed = self.tracker.statement(event.pos)
            return self._commit(event.end_pos) if completed else []
        changes = metadata.table_changes(event.sql, event.database)
        self._reload(changes)  # first: if it fails, the DDL is read again
        completed = self.tracker.statement(event.pos)
        records = self._commit(event.end_pos) if completed else []
        if not self.settings.include_schema_changes:
            return records
        captured = [c for c in changes if self.filters.include_table(c.database, c.table)]
        if changes and not captured:
            return records
        if not changes and not self.filters.include_database(event.database or ""):
            return records
        database = captured[0].database if captured else event.database
        source = self.builder.source(
            {
                "ts_ms": self.tracker.ts_sec * 1000,
                "snapshot": "false",
                "db": database,
                "table": ",".join(c.table for c in captured) or None,
                "server_id": event.server_id,
                "gtid": self.tracker.gtid or None,
                "file": self.tracker.file,
                "pos": event.pos,
                "row": 0,
                "thread": event.thread,
                "query": None,
            }
        )
        key, value = metadata.schema_change(database, event.sql, captured, source, _now_ms())
        offset = self._offset_map(self.tracker.offset())
        records.append(self._metadata_record("", key, value, offset))
        return records

    def _reload(self, changes: list[metadata.TableChange]) -> None:
        if not changes:
            self.tables = self._load_all()
            return
        for change in changes:
            if not self.filters.include_table(change.database, change.table):
                continue
            table = self._load_table(change.database, change.table)
            if table is None:
                self.tables.pop((change.database, change.table), None)
            else:
                self.tables[(change.database, change.table)] = table

    def heartbeat(self) -> SourceRecord:
        """A heartbeat record carrying the current offset."""
        key, value = metadata.heartbeat(self.settings.topic_prefix, _now_ms())
        return SourceRecord(
            f"__omconnect-heartbeat.{self.settings.topic_prefix}",
            None,
            key.schema,
            key,
            value.schema,
            value,
            source_partition=self.partition,
            source_offset=self._offset_map(self.tracker.offset()),
        )


def _images(op: str, row: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(before, after) raw images of one binlog row, empty SETs restored."""
    if op == "u":
        before = restore_empty_sets(dict(row["before_values"]), row.get("before_none_sources"))
        after = restore_empty_sets(dict(row["after_values"]), row.get("after_none_sources"))
        return dict(before), dict(after)
    values = dict(restore_empty_sets(dict(row["values"]), row.get("none_sources")))
    return (values, None) if op == "d" else (None, values)


def _now_ms() -> int:
    return int(time.time() * 1000)
