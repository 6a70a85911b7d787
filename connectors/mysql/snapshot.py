"""The initial snapshot: every included table's rows as of one binlog position.

`begin_snapshot` opens a consistent read and returns the binlog position it matches:

- MariaDB: ``START TRANSACTION WITH CONSISTENT SNAPSHOT`` and the status variables
  ``binlog_snapshot_file``/``binlog_snapshot_position`` (no lock), GTIDs from
  ``BINLOG_GTID_POS`` of that position;
- MySQL: ``FLUSH TABLES WITH READ LOCK`` held just long enough to start the
  transaction and read ``SHOW MASTER STATUS`` (needs RELOAD).

`TableSnapshot` then reads each table in primary-key order, in chunks of
``snapshot.fetch.size`` rows (keyset pagination: ``WHERE (pk) > (last) ORDER BY pk
LIMIT n``); a table without a primary key is streamed with a server-side cursor.
Rows come as tuples (a plain PyMySQL cursor: no dict per row) of the SELECT form
`values.py` converts (session in UTC), with the column names of their SELECT.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pymysql
import pymysql.cursors

from .offsets import BinlogOffset
from .tables import Table
from .values import prepare_session


@dataclass(frozen=True, slots=True)
class SnapshotRow:
    """One row read: its values in the order of ``names`` (the SELECT's columns,
    one tuple shared by a chunk's rows), and whether it is the last row of the whole
    snapshot."""

    table: Table
    names: tuple[str, ...]
    row: tuple[Any, ...]
    last: bool

    def as_dict(self) -> dict[str, Any]:
        """The row as column name → value."""
        return dict(zip(self.names, self.row, strict=True))


def quote(name: str) -> str:
    """A MySQL identifier in backticks."""
    return "`" + name.replace("`", "``") + "`"


def chunk_query(table: Table, fetch_size: int, after: bool) -> str:
    """The SELECT of one chunk of ``table`` in primary-key order; ``after``: only rows
    whose key is greater than the key given as parameters (one per key column)."""
    name = f"{quote(table.database)}.{quote(table.name)}"
    keys = [quote(c) for c in table.primary_key]
    where = ""
    if after:
        if len(keys) == 1:
            where = f" WHERE {keys[0]} > %s"
        else:
            marks = ", ".join(["%s"] * len(keys))
            where = f" WHERE ({', '.join(keys)}) > ({marks})"
    return f"SELECT * FROM {name}{where} ORDER BY {', '.join(keys)} LIMIT {int(fetch_size)}"


def begin_snapshot(connection: pymysql.Connection, mariadb: bool) -> BinlogOffset:
    """Start a consistent-read transaction on ``connection`` (which the snapshot's
    SELECTs then use) and return the binlog position it corresponds to, flagged
    ``snapshot``."""
    prepare_session(connection)
    with connection.cursor() as cursor:
        cursor.execute("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        if mariadb:
            cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
            cursor.execute("SHOW STATUS LIKE 'binlog_snapshot_%'")
            status = {str(k).lower(): str(v) for k, v in cursor.fetchall()}
            file = status["binlog_snapshot_file"]
            pos = int(status["binlog_snapshot_position"])
            cursor.execute("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))
            found = cursor.fetchone()
            gtids = str(found[0] or "") if found else ""
        else:
            cursor.execute("FLUSH TABLES WITH READ LOCK")
            try:
                cursor.execute("START TRANSACTION WITH CONSISTENT SNAPSHOT")
                file, pos, gtids = _master_status(cursor)
            finally:
                cursor.execute("UNLOCK TABLES")
        cursor.execute("SELECT UNIX_TIMESTAMP()")
        now = int(cursor.fetchone()[0])
    return BinlogOffset(file, pos, gtids, snapshot=True, ts_sec=now)


def _master_status(cursor: Any) -> tuple[str, int, str]:
    try:
        cursor.execute("SHOW BINARY LOG STATUS")  # MySQL 8.2+
    except pymysql.err.ProgrammingError:
        cursor.execute("SHOW MASTER STATUS")
    row = cursor.fetchone()
    if row is None:
        raise pymysql.err.OperationalError(0, "binary logging is off (SHOW MASTER STATUS empty)")
    gtids = str(row[4]).replace("\n", "") if len(row) > 4 and row[4] else ""
    return str(row[0]), int(row[1]), gtids


def estimate_rows(connection: pymysql.Connection, tables: Sequence[Table]) -> int:
    """The estimated row count of ``tables`` (``information_schema.TABLES.TABLE_ROWS``,
    which InnoDB only approximates)."""
    if not tables:
        return 0
    total = 0
    with connection.cursor() as cursor:
        for table in tables:
            cursor.execute(
                "SELECT TABLE_ROWS FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                (table.database, table.name),
            )
            row = cursor.fetchone()
            total += int(row[0] or 0) if row else 0
    return total


class TableSnapshot:
    """Reads ``tables`` (in the given order) inside the transaction `begin_snapshot`
    started on ``connection``. `rows` yields each row once; ``done`` counts them."""

    def __init__(
        self, connection: pymysql.Connection, tables: Sequence[Table], fetch_size: int
    ) -> None:
        self._connection = connection
        self._tables = list(tables)
        self._fetch_size = fetch_size
        self.done = 0

    def rows(self) -> Iterator[SnapshotRow]:
        """Every row of every table, the very last one flagged ``last``."""
        previous: SnapshotRow | None = None
        for table in self._tables:
            for names, chunk in self._chunks(table):
                for row in chunk:
                    if previous is not None:
                        yield previous
                    previous = SnapshotRow(table, names, row, False)
                    self.done += 1
        if previous is not None:
            yield SnapshotRow(previous.table, previous.names, previous.row, True)

    def _chunks(self, table: Table) -> Iterator[tuple[tuple[str, ...], Sequence[tuple[Any, ...]]]]:
        """The rows of ``table`` in chunks, each with its SELECT's column names."""
        if not table.primary_key:
            yield from self._streamed(table)
            return
        last: tuple[Any, ...] | None = None
        while True:
            sql = chunk_query(table, self._fetch_size, last is not None)
            with self._connection.cursor(pymysql.cursors.Cursor) as cursor:
                cursor.execute(sql, last)
                chunk = cursor.fetchall()
                names = _names(cursor)
            yield names, chunk
            if len(chunk) < self._fetch_size:
                return
            last = tuple(chunk[-1][names.index(c)] for c in table.primary_key)

    def _streamed(
        self, table: Table
    ) -> Iterator[tuple[tuple[str, ...], Sequence[tuple[Any, ...]]]]:
        name = f"{quote(table.database)}.{quote(table.name)}"
        with self._connection.cursor(pymysql.cursors.SSCursor) as cursor:
            cursor.execute(f"SELECT * FROM {name}")
            names = _names(cursor)
            while chunk := cursor.fetchmany(self._fetch_size):
                yield names, chunk

    def close(self) -> None:
        """End the read transaction and close the connection."""
        try:
            self._connection.rollback()
        finally:
            self._connection.close()


def _names(cursor: Any) -> tuple[str, ...]:
    return tuple(str(d[0]) for d in cursor.description or ())
