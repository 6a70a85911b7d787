"""`BinlogStream`: one pymysql-replication reader from a binlog position, with the
library's events translated into the few kinds the source acts on.

The reader blocks, and the server sends a heartbeat every ``heartbeat_s`` when idle,
so `BinlogStream.next` returns at least that often. A lost connection raises
`BinlogConnectionLost` instead of letting the library reconnect on its own (it would
restart from a position of its choosing): the caller closes the stream and opens a
new one from its own position. Events the library cannot decode (compressed
transaction payloads, MariaDB compressed events, unknown types) raise
`UndecodableEventError`: dropping them would lose changes.

Positioning: by file/position with ``is_mariadb=False`` on MySQL and MariaDB
alike (the library's MariaDB mode ignores ``log_file``/``log_pos``); by GTID with
``auto_position``: MySQL's executed GTID set (COM_BINLOG_DUMP_GTID), or with
``is_mariadb=True`` MariaDB's GTID position (``@slave_connect_state``, strict mode):
the server then sends the transactions after it, starting with a fake Rotate to the
file it found, and a fake Gtid_list event whose end is where reading starts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.event import (
    GtidEvent,
    HeartbeatLogEvent,
    MariadbGtidEvent,
    MariadbGtidListEvent,
    NotImplementedEvent,
    QueryEvent,
    RotateEvent,
    StopEvent,
    XidEvent,
)
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    PartialUpdateRowsEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from omconnect.errors import FatalError, RetriableError

log = logging.getLogger(__name__)

# Error codes of a connection that is gone or never came (reconnect with backoff).
CONNECTION_ERRORS = frozenset({1040, 1053, 1152, 1158, 1159, 1160, 1161, 1927, 2002, 2003,
                               2006, 2013, 2055})  # fmt: skip
# ER_MASTER_FATAL_ERROR_READING_BINLOG: the requested position is not in the binlog.
BINLOG_GONE = 1236
_ANONYMOUS_GTID = 0x22
# Event types that carry nothing a row-based source needs.
_HARMLESS_TYPES = frozenset({0x05, 0x1C, 0x24, 0x25, 0x29})
_UNDECODABLE = {
    0x28: "a compressed transaction payload (MySQL binlog_transaction_compression=ON): "
    "run `SET GLOBAL binlog_transaction_compression=OFF`",
    0xA5: "a compressed query (MariaDB log_bin_compress=ON): run `SET GLOBAL log_bin_compress=OFF`",
}
for _type in range(0xA6, 0xAC):
    _UNDECODABLE[_type] = (
        "compressed row events (MariaDB log_bin_compress=ON): run `SET GLOBAL log_bin_compress=OFF`"
    )
_FL_STANDALONE = 0x01  # MariaDB GTID flag: a single statement, no COMMIT follows


class BinlogConnectionLost(RetriableError):
    """The binlog connection dropped or could not be opened."""


class PositionGoneError(FatalError):
    """The server no longer has the requested binlog position (purged)."""


class UndecodableEventError(FatalError):
    """An event the source cannot decode; skipping it would lose changes."""


# --- what the source sees --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Rotate:
    """The binlog continues in ``file`` at ``pos``."""

    file: str
    pos: int


@dataclass(frozen=True, slots=True)
class Position:
    """An event outside any transaction ended at ``end_pos`` of the current file."""

    end_pos: int


@dataclass(frozen=True, slots=True)
class Begin:
    """A transaction starts at ``pos`` (GTID, anonymous GTID or BEGIN event)."""

    pos: int
    gtid: str = ""
    single_statement: bool | None = None


@dataclass(frozen=True, slots=True)
class Statement:
    """A query event other than BEGIN/COMMIT/ROLLBACK (usually DDL)."""

    pos: int
    end_pos: int
    database: str
    sql: str
    thread: int | None = None
    server_id: int = 0


@dataclass(frozen=True, slots=True)
class Commit:
    """The transaction ended (XID, COMMIT or ROLLBACK); the next event is at
    ``end_pos``."""

    end_pos: int
    xid: int | None = None


@dataclass(frozen=True, slots=True)
class Rows:
    """A row event: ``op`` c/u/d, and the rows as pymysql-replication decodes them
    (``values``, or ``before_values``/``after_values``, plus ``none_sources``)."""

    pos: int
    op: str
    database: str
    table: str
    rows: list[dict[str, Any]] = field(repr=False)
    server_id: int = 0


@dataclass(frozen=True, slots=True)
class Heartbeat:
    """The server is idle (or still sending skipped events)."""


Event = Rotate | Position | Begin | Statement | Commit | Rows | Heartbeat
_CONTROL_QUERIES = {"BEGIN": "begin", "COMMIT": "commit", "ROLLBACK": "commit"}


def translate(event: Any) -> Event | None:
    """Our view of one library event; None for events without meaning here.
    `UndecodableEventError` for events that would hide changes."""
    packet = event.packet
    start = packet.log_pos - packet.event_size if packet.log_pos else 0
    if isinstance(event, RotateEvent):
        return Rotate(event.next_binlog, event.position)
    if isinstance(event, MariadbGtidListEvent):
        return Position(packet.log_pos) if packet.log_pos else None
    if isinstance(event, MariadbGtidEvent):
        return Begin(start, event.gtid, bool(event.flags & _FL_STANDALONE))
    if isinstance(event, GtidEvent):
        return Begin(start, event.gtid)
    if isinstance(event, XidEvent):
        return Commit(packet.log_pos, event.xid)
    if isinstance(event, QueryEvent):
        return _query(event, start, packet.log_pos)
    if isinstance(event, WriteRowsEvent | UpdateRowsEvent | DeleteRowsEvent):
        if isinstance(event, PartialUpdateRowsEvent):
            raise UndecodableEventError(
                "partial JSON update rows (binlog_row_value_options=PARTIAL_JSON): run "
                "`SET GLOBAL binlog_row_value_options=''`"
            )
        op = "c" if isinstance(event, WriteRowsEvent) else "u"
        op = "d" if isinstance(event, DeleteRowsEvent) else op
        return Rows(start, op, event.schema, event.table, event.rows, packet.server_id)
    if isinstance(event, HeartbeatLogEvent):
        return Heartbeat()
    if isinstance(event, NotImplementedEvent):
        return _unknown(event.event_type, start)
    if isinstance(event, StopEvent):
        return None
    return None


def _query(event: QueryEvent, start: int, end: int) -> Event:
    sql = event.query.strip()
    kind = _CONTROL_QUERIES.get(sql.upper().rstrip(";"))
    if kind == "begin":
        return Begin(start)
    if kind == "commit":
        return Commit(end)
    schema = event.schema.decode() if isinstance(event.schema, bytes) else str(event.schema)
    thread = getattr(event, "slave_proxy_id", None)
    return Statement(start, end, schema, sql, thread, event.packet.server_id)


def _unknown(event_type: int, start: int) -> Event | None:
    if event_type == _ANONYMOUS_GTID:
        return Begin(start)
    if event_type in _HARMLESS_TYPES:
        return None
    what = _UNDECODABLE.get(event_type, "an event type pymysql-replication cannot decode")
    raise UndecodableEventError(f"binlog event type {event_type:#x} at {start}: {what}")


# --- the reader ------------------------------------------------------------------------


class _OneStreamConnection:
    """``pymysql_wrapper`` for the library: the stream connection may be opened once.
    A second attempt (the library's own reconnect) raises `BinlogConnectionLost`."""

    def __init__(self) -> None:
        self.stream_opened = False

    def __call__(self, **settings: Any) -> pymysql.Connection:
        is_control = settings.get("db") == "information_schema"
        if not is_control:
            if self.stream_opened:
                raise BinlogConnectionLost("the binlog connection was lost")
            self.stream_opened = True
        if "db" in settings:  # the library still uses PyMySQL's deprecated name
            settings["database"] = settings.pop("db")
        try:
            return pymysql.connect(**settings)
        except pymysql.err.OperationalError as exc:
            raise BinlogConnectionLost(f"cannot connect: {exc}") from exc


class BinlogStream:
    """Reads the binlog from ``file``/``pos`` (the start of a transaction or of an
    event outside one), or, given ``gtids``, from the first transaction not in that
    GTID set (MySQL) or after that GTID position (MariaDB, ``mariadb=True``). Not
    thread-safe: one reader thread; `close` may be called once it stopped reading."""

    def __init__(
        self,
        settings: Mapping[str, Any],
        server_id: int,
        file: str,
        pos: int,
        *,
        heartbeat_s: float,
        gtids: str | None = None,
        mariadb: bool = False,
    ) -> None:
        connection = {**settings, "read_timeout": max(settings.get("connect_timeout", 30), 2)}
        connection.pop("database", None)
        self._reader = BinLogStreamReader(
            connection_settings=connection,
            server_id=server_id,
            blocking=True,
            resume_stream=True,
            log_file=file,
            log_pos=pos,
            auto_position=gtids,
            is_mariadb=mariadb and gtids is not None,
            filter_non_implemented_events=False,
            slave_heartbeat=heartbeat_s,
            pymysql_wrapper=_OneStreamConnection(),
            enable_logging=False,
        )
        self.timestamp = 0
        """Binlog time (epoch seconds) of the last event returned (0: none yet)."""

    def next(self) -> Event:
        """The next event of interest: at most one heartbeat period away. Raises
        `BinlogConnectionLost`, `PositionGoneError` or `UndecodableEventError`."""
        while True:
            try:
                event = self._reader.fetchone()
            except BinlogConnectionLost:
                raise
            except pymysql.err.MySQLError as exc:
                raise _classify(exc) from exc
            except (OSError, EOFError) as exc:
                raise BinlogConnectionLost(f"binlog connection failed: {exc}") from exc
            if event is None:  # the server ended the stream (e.g. shutting down)
                raise BinlogConnectionLost("the server ended the binlog stream")
            translated = translate(event)
            if translated is not None:
                if event.timestamp:
                    self.timestamp = event.timestamp
                return translated

    def close(self) -> None:
        """Close the connections (errors ignored: they may be gone already)."""
        try:
            self._reader.close()
        except Exception:  # closing a broken connection
            log.debug("closing the binlog reader failed", exc_info=True)


def _classify(exc: pymysql.err.MySQLError) -> Exception:
    code = exc.args[0] if exc.args and isinstance(exc.args[0], int) else 0
    if code in CONNECTION_ERRORS:
        return BinlogConnectionLost(f"binlog connection failed: {exc}")
    if code == BINLOG_GONE:
        return PositionGoneError(f"the server cannot send the binlog from there: {exc}")
    return FatalError(f"reading the binlog failed: {exc}")
