"""`MySqlSourceConnector`: change data capture from a MySQL or MariaDB binlog, with
Debezium's config keys and change events (docs/connectors/mysql-source.md and
docs/connectors/cdc-events.md).

One task reads the binlog (``tasks.max`` beyond 1 creates no more). At start it
checks the server (`preconditions`), decides between snapshot and streaming
(`plan.decide_start`), then either snapshots (`snapshot`) and streams from the
snapshot's position, or streams from the stored offset, skipping the events and rows
the offset says were emitted. A lost connection closes the binlog reader; a new one
starts from the task's own position after a backoff (doubling, capped).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pymysql

from omconnect.connect.config import PluginConfig, parse_config
from omconnect.connect.connector import SourceConnector, SourceTask, TaskProgress
from omconnect.connect.records import SourceRecord
from omconnect.errors import FatalError, RetriableError

from .binlog import BinlogConnectionLost, BinlogStream, Heartbeat, PositionGoneError
from .chunks import ChunkReader
from .config import Flavor, MySqlSourceConfig, Positioning, SnapshotMode
from .events import EventBuilder
from .filters import parse_filters
from .incremental import IncrementalSnapshot
from .offsets import BinlogOffset
from .plan import (
    Start,
    decide_start,
    gtid_positioning,
    position_gone,
    server_has_gtids,
)
from .preconditions import check_preconditions, is_mariadb, read_server_state
from .snapshot import SnapshotRow, TableSnapshot, begin_snapshot, estimate_rows
from .snapshot_records import SnapshotRecords
from .streaming import ChangeStreamer, StreamSettings
from .tables import Table, TableId, load_table, load_tables
from .values import snapshot_conversions

log = logging.getLogger(__name__)

VERSION = "1.0.0"


class MySqlSourceConnector(SourceConnector):
    """Plans one task: a binlog has one reader."""

    config_model: ClassVar[type[PluginConfig]] = MySqlSourceConfig

    def version(self) -> str:
        return VERSION

    def start(self, config: Mapping[str, str]) -> None:
        self._config = dict(config)
        parse_config(MySqlSourceConfig, config)
        parse_filters(config)

    def task_class(self) -> type[SourceTask]:
        return MySqlSourceTask

    def task_configs(self, max_tasks: int) -> list[dict[str, str]]:
        return [dict(self._config)]

    def stop(self) -> None:
        pass


class Backoff:
    """Reconnect delays: ``initial`` doubling up to ``maximum``; `reset` after a
    success."""

    def __init__(self, initial_s: float, maximum_s: float) -> None:
        self.initial = initial_s
        self.maximum = maximum_s
        self.attempts = 0

    def next_delay(self) -> float:
        delay = min(self.initial * 2**self.attempts, self.maximum)
        self.attempts += 1
        return delay

    def reset(self) -> None:
        self.attempts = 0


def split_batch(
    records: list[SourceRecord], limit: int
) -> tuple[list[SourceRecord], list[SourceRecord]]:
    """At most ``limit`` records to return now and the rest, cut only between records
    with different offsets: the records of one row (a delete and its tombstone, or the
    three of a key change) share an offset and must be committed together."""
    if len(records) <= limit:
        return records, []
    cut = limit
    while cut > 0 and records[cut].source_offset == records[cut - 1].source_offset:
        cut -= 1
    if cut == 0:  # one row's records exceed the limit: keep them together anyway
        cut = limit
        while cut < len(records) and records[cut].source_offset == records[0].source_offset:
            cut += 1
    return records[:cut], records[cut:]


class MySqlSourceTask(SourceTask):
    """Snapshots, then streams the binlog; see the module docstring."""

    def version(self) -> str:
        return VERSION

    def start(self, config: Mapping[str, str]) -> None:
        self._config = parse_config(MySqlSourceConfig, config)
        self._filters = parse_filters(config)
        self._builder = EventBuilder(
            self._config.topic_prefix, self._filters, self._config.tombstones_on_delete
        )
        self._partition = {"server": self._config.topic_prefix}
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._stream: BinlogStream | None = None
        self._snapshot: TableSnapshot | None = None
        self._snapshot_rows: Iterator[SnapshotRow] | None = None
        self._snapshot_records: SnapshotRecords | None = None
        self._snapshot_total: int | None = None
        self._pending: list[SourceRecord] = []
        self._retry_at = 0.0
        self._backoff = Backoff(
            self._config.backoff_initial_ms / 1000, self._config.backoff_max_ms / 1000
        )
        self._last_heartbeat = time.monotonic()
        self._chunks: ChunkReader | None = None
        self._control = self._connect()
        self._start_from(self._stored_offset())

    # -- start ------------------------------------------------------------------------
    def _connect(self, **extra: Any) -> pymysql.Connection:
        try:
            settings = self._config.connection_settings(**{"autocommit": True, **extra})
            return pymysql.connect(**settings)
        except pymysql.err.OperationalError as exc:
            raise RetriableError(
                f"cannot connect to {self._config.hostname}:{self._config.port}: {exc}"
            ) from exc

    def _stored_offset(self) -> BinlogOffset | None:
        stored = self.context.offset_reader.offset(self._partition)
        self._stored_incremental = IncrementalSnapshot.from_offset(stored or {})
        return None if not stored else BinlogOffset.from_offset(stored)

    def _start_from(self, stored: BinlogOffset | None) -> None:
        variables, grants = read_server_state(self._control)
        self._mariadb = self._is_mariadb(variables)
        self._server_id = int(variables.get("server_id", "0") or 0)
        self._server_gtids = server_has_gtids(variables, self._mariadb)
        by_gtid = False
        if stored is not None:
            by_gtid, _ = gtid_positioning(self._config.positioning, stored, self._server_gtids)
        elif self._config.positioning is Positioning.GTID:
            gtid_positioning(Positioning.GTID, BinlogOffset("", 0), self._server_gtids)
        plan = decide_start(self._config.snapshot_mode, stored, self._binary_logs(), by_gtid)
        problems = check_preconditions(
            variables,
            grants,
            replica_server_id=self._config.server_id,
            snapshot=plan.start is Start.SNAPSHOT,
        )
        if problems:
            raise FatalError(
                "the server is not set up for change data capture:\n- " + "\n- ".join(problems)
            )
        log.info(
            "MySQL source %s: %s (%s)", self._config.topic_prefix, plan.start.value, plan.reason
        )
        tables = load_tables(self._control, self._filters.include_table)
        if plan.start is Start.SNAPSHOT:
            start = self._begin_snapshot(tables)
        elif plan.start is Start.STORED and stored is not None:
            start = stored
        elif plan.start is Start.CURRENT:
            start = self._current_position()
        else:
            start = self._oldest_position()
        self._by_gtid: bool | None = None
        self._streamer = ChangeStreamer(
            StreamSettings(
                self._config.topic_prefix,
                self._config.include_schema_changes,
                self._config.provide_transaction_metadata,
            ),
            self._builder,
            self._filters,
            tables,
            self._load_table,
            self._load_all,
            BinlogOffset(start.file, start.pos, start.gtids, start.event, start.row, False,
                         start.ts_sec, start.transaction_gtid),
            incremental=(self._stored_incremental if plan.start is Start.STORED
                         else IncrementalSnapshot()),
            signal_table=self._config.signal_table,
        )  # fmt: skip
        signal_table = self._config.signal_table
        if signal_table is not None and self._chunks is None:
            self._chunks = ChunkReader(
                self._connect,
                signal_table,
                self._config.incremental_snapshot_chunk_size,
                self._streamer.dedup_key,
            )

    def _is_mariadb(self, variables: Mapping[str, str]) -> bool:
        if self._config.flavor is Flavor.AUTO:
            return is_mariadb(variables.get("version", ""))
        return self._config.flavor is Flavor.MARIADB

    def _binary_logs(self) -> list[str]:
        with self._control.cursor() as cursor:
            cursor.execute("SHOW BINARY LOGS")
            return [str(row[0]) for row in cursor.fetchall()]

    def _current_position(self) -> BinlogOffset:
        with self._control.cursor() as cursor:
            cursor.execute("SHOW MASTER STATUS")
            row = cursor.fetchone()
            if row is None:
                raise FatalError("binary logging is off: start the server with log-bin")
            gtids = ""
            if self._mariadb:
                cursor.execute("SELECT @@gtid_binlog_pos")
                gtids = str(cursor.fetchone()[0] or "")
            elif len(row) > 4 and row[4]:
                gtids = str(row[4]).replace("\n", "")
        return BinlogOffset(str(row[0]), int(row[1]), gtids)

    def _oldest_position(self) -> BinlogOffset:
        """The start of the oldest binlog, with the GTIDs before it (so that GTID
        positioning does not ask for purged transactions)."""
        oldest = self._binary_logs()[0]
        with self._control.cursor() as cursor:
            if self._mariadb:
                cursor.execute("SELECT BINLOG_GTID_POS(%s, 4)", (oldest,))
            else:
                cursor.execute("SELECT @@GLOBAL.gtid_purged")
            row = cursor.fetchone()
        gtids = str(row[0] or "").replace("\n", "") if row else ""
        return BinlogOffset(oldest, 4, gtids)

    def _begin_snapshot(self, tables: dict[TableId, Table]) -> BinlogOffset:
        connection = self._connect(autocommit=False, conv=snapshot_conversions())
        ordered = [tables[key] for key in sorted(tables)]
        offset = begin_snapshot(connection, self._mariadb)
        self._snapshot_total = estimate_rows(self._control, ordered)
        self._snapshot = TableSnapshot(connection, ordered, self._config.snapshot_fetch_size)
        self._snapshot_rows = self._snapshot.rows()
        self._snapshot_records = SnapshotRecords(
            self._builder, offset, self._partition, self._server_id
        )
        log.info(
            "snapshot of %d tables at %s:%d (about %d rows)",
            len(ordered),
            offset.file,
            offset.pos,
            self._snapshot_total,
        )
        return offset

    def _load_table(self, database: str, table: str) -> Table | None:
        return load_table(self._live_control(), database, table)

    def _load_all(self) -> dict[TableId, Table]:
        return load_tables(self._live_control(), self._filters.include_table)

    def _live_control(self) -> pymysql.Connection:
        """The control connection, opened again if the server dropped it (restart)."""
        try:
            self._control.ping(reconnect=False)
        except pymysql.err.Error:
            if self._control.open:
                self._control.close()
            self._control = self._connect()
        return self._control

    # -- poll -------------------------------------------------------------------------
    def poll(self) -> list[SourceRecord]:
        with self._lock:
            if self._stopping.is_set():
                return []
            try:
                if self._snapshot_rows is not None:
                    return self._poll_snapshot()
                return self._poll_stream()
            finally:
                if self._stopping.is_set():
                    self._close()

    def _poll_snapshot(self) -> list[SourceRecord]:
        rows, maker = self._snapshot_rows, self._snapshot_records
        if rows is None or maker is None:
            return []
        records: list[SourceRecord] = []
        limit = self._config.max_batch_size
        record = maker.record
        for item in rows:
            records.append(record(item))
            if len(records) >= limit:
                return records
        self._finish_snapshot()
        return records

    def _finish_snapshot(self) -> None:
        if self._snapshot is not None:
            log.info("snapshot done: %d rows", self._snapshot.done)
            self._snapshot.close()
        self._snapshot = None
        self._snapshot_rows = None
        self._snapshot_records = None

    def _poll_stream(self) -> list[SourceRecord]:
        records, self._pending = self._pending, []
        deadline = time.monotonic() + self._config.poll_interval_ms / 1000
        while len(records) < self._config.max_batch_size and not self._stopping.is_set():
            stream = self._stream or self._open_stream(deadline)
            if stream is None:
                break
            try:
                if self._chunks is not None and self._streamer.incremental.active:
                    self._chunks.run(self._streamer.incremental, self._streamer.tables)
                event = stream.next()
            except BinlogConnectionLost as exc:
                self._lost(exc)
                break
            except pymysql.err.OperationalError as exc:  # the chunk connection
                self._lost(exc)
                break
            except PositionGoneError as exc:
                if self._config.snapshot_mode is not SnapshotMode.WHEN_NEEDED:
                    offset = self._streamer.offset()
                    raise PositionGoneError(
                        position_gone(offset, bool(self._by_gtid), str(exc.__cause__ or exc))
                    ) from exc
                log.warning("the binlog position was purged: taking a new snapshot")
                self._close()
                self._control = self._connect()
                self._start_from(None)
                break
            if isinstance(event, Heartbeat):
                break
            self._backoff.reset()
            try:
                records.extend(self._streamer.handle(event, stream.timestamp))
            except RetriableError as exc:  # reloading a table failed: read it again
                self._lost(exc)
                break
            if time.monotonic() >= deadline:
                break
        self._maybe_heartbeat(records)
        records, self._pending = split_batch(records, self._config.max_batch_size)
        return records

    def _open_stream(self, deadline: float) -> BinlogStream | None:
        wait = self._retry_at - time.monotonic()
        if wait > 0:
            self._stopping.wait(min(wait, max(0.0, deadline - time.monotonic())))
            if time.monotonic() < self._retry_at:
                return None
        offset = self._streamer.restart()
        by_gtid, reason = gtid_positioning(self._config.positioning, offset, self._server_gtids)
        if by_gtid != self._by_gtid:
            log.info(
                "MySQL source %s: binlog positioned by %s (%s)",
                self._config.topic_prefix,
                "GTID" if by_gtid else "file and position",
                reason,
            )
            self._by_gtid = by_gtid
        self._stream = BinlogStream(
            self._config.connection_settings(),
            self._config.server_id,
            offset.file,
            offset.pos,
            heartbeat_s=self._config.poll_interval_ms / 1000,
            gtids=offset.gtids if by_gtid else None,
            mariadb=self._mariadb,
        )
        return self._stream

    def _lost(self, error: Exception) -> None:
        self._streamer.incremental.abandon()
        if self._chunks is not None:
            self._chunks.close()
        if self._stream is not None:
            self._stream.close()
        self._stream = None
        delay = self._backoff.next_delay()
        self._retry_at = time.monotonic() + delay
        log.warning(
            "MySQL source %s: binlog connection lost (%s); reconnecting in %.1fs",
            self._config.topic_prefix,
            error,
            delay,
        )

    def _maybe_heartbeat(self, records: list[SourceRecord]) -> None:
        interval = self._config.heartbeat_interval_ms / 1000
        if not interval or time.monotonic() - self._last_heartbeat < interval:
            return
        self._last_heartbeat = time.monotonic()
        records.append(self._streamer.heartbeat())

    # -- progress and stop ------------------------------------------------------------
    def progress(self) -> TaskProgress | None:
        """While snapshotting: rows read of the estimated total (TABLE_ROWS); while an
        incremental snapshot runs: rows emitted by it of the estimated total of the
        tables begun so far."""
        snapshot = self._snapshot
        if snapshot is not None:
            return TaskProgress("snapshot", snapshot.done, self._snapshot_total)
        streamer = getattr(self, "_streamer", None)
        if streamer is not None and streamer.incremental.active:
            incremental = streamer.incremental
            return TaskProgress(
                "incremental-snapshot", incremental.rows_emitted, incremental.estimated_total
            )
        return None

    def stop(self) -> None:
        self._stopping.set()
        if self._lock.acquire(blocking=False):
            try:
                self._close()
            finally:
                self._lock.release()

    def _close(self) -> None:
        if self._chunks is not None:
            self._chunks.close()
        if self._stream is not None:
            self._stream.close()
            self._stream = None
        if self._snapshot is not None:
            self._snapshot.close()
            self._snapshot = None
            self._snapshot_rows = None
            self._snapshot_records = None
        control = getattr(self, "_control", None)
        if control is not None and control.open:
            control.close()


__all__ = ["Backoff", "MySqlSourceConnector", "MySqlSourceTask"]
