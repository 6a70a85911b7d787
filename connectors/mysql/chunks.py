"""`ChunkReader`: the I/O of the incremental snapshot (`incremental.py` decides):
the watermark rows written to the signal table and the chunk SELECTs, on a
connection of its own (autocommit, session in UTC like the initial snapshot's).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import pymysql
import pymysql.cursors

from .incremental import WINDOW_CLOSE, WINDOW_OPEN, ChunkRequest, IncrementalSnapshot, Key
from .snapshot import quote
from .tables import Table, TableId
from .values import prepare_session

log = logging.getLogger(__name__)

DedupKey = Callable[[Table, dict[str, Any]], Key]


def bounded_chunk_query(table: Table, chunk_size: int, after: bool) -> str:
    """The SELECT of one chunk: keys above the first key parameters (when ``after``)
    and at most the last ones (the maximum key), in key order."""
    keys = [quote(c) for c in table.primary_key]
    columns = keys[0] if len(keys) == 1 else f"({', '.join(keys)})"
    marks = "%s" if len(keys) == 1 else f"({', '.join(['%s'] * len(keys))})"
    where = f"{columns} <= {marks}"
    if after:
        where = f"{columns} > {marks} AND {where}"
    name = f"{quote(table.database)}.{quote(table.name)}"
    return f"SELECT * FROM {name} WHERE {where} ORDER BY {', '.join(keys)} LIMIT {int(chunk_size)}"


class ChunkReader:
    """Runs the windows `IncrementalSnapshot.next_window` asks for."""

    def __init__(
        self,
        connect: Callable[[], pymysql.Connection],
        signal_table: TableId,
        chunk_size: int,
        dedup_key: DedupKey,
    ) -> None:
        self._connect = connect
        self._signal = f"{quote(signal_table[0])}.{quote(signal_table[1])}"
        self._chunk_size = chunk_size
        self._dedup_key = dedup_key
        self._connection: pymysql.Connection | None = None

    def run(self, snapshot: IncrementalSnapshot, tables: dict[TableId, Table]) -> None:
        """Do what the snapshot needs until a window is pending (its watermarks and
        chunk written and read) or nothing is left."""
        while (request := snapshot.next_window()) is not None:
            table = tables.get(request.table)
            if table is None or not table.primary_key:
                log.warning(
                    "incremental snapshot of %s.%s skipped: %s",
                    *request.table,
                    "no such table" if table is None else "it has no primary key",
                )
                snapshot.skip_table()
                continue
            if request.needs_maximum:
                snapshot.set_maximum(*self._maximum(table))
                continue
            self._window(snapshot, request, table)
            return

    def _cursor(self, kind: Any = None) -> Any:
        if self._connection is None or not self._connection.open:
            self._connection = self._connect()
            prepare_session(self._connection)
        return self._connection.cursor(kind) if kind else self._connection.cursor()

    def _maximum(self, table: Table) -> tuple[Key | None, int]:
        keys = ", ".join(quote(c) for c in table.primary_key)
        desc = ", ".join(f"{quote(c)} DESC" for c in table.primary_key)
        name = f"{quote(table.database)}.{quote(table.name)}"
        with self._cursor() as cursor:
            cursor.execute(f"SELECT {keys} FROM {name} ORDER BY {desc} LIMIT 1")
            row = cursor.fetchone()
            cursor.execute(
                "SELECT TABLE_ROWS FROM information_schema.TABLES"
                " WHERE TABLE_SCHEMA = %s AND TABLE_NAME = %s",
                (table.database, table.name),
            )
            estimate = cursor.fetchone()
        return (None if row is None else tuple(row)), int(estimate[0] or 0) if estimate else 0

    def _window(self, snapshot: IncrementalSnapshot, request: ChunkRequest, table: Table) -> None:
        data = json.dumps({"data-collection": f"{table.database}.{table.name}"})
        self._watermark(request.open_id, WINDOW_OPEN, data)
        sql = bounded_chunk_query(table, self._chunk_size, request.after is not None)
        params = (*(request.after or ()), *(request.maximum or ()))
        with self._cursor(pymysql.cursors.DictCursor) as cursor:
            cursor.execute(sql, params)
            rows = list(cursor.fetchall())
        self._watermark(request.close_id, WINDOW_CLOSE, data)
        snapshot.chunk_read(
            [
                (self._dedup_key(table, row), tuple(row[c] for c in table.primary_key), row)
                for row in rows
            ],
            self._chunk_size,
        )

    def _watermark(self, signal_id: str, kind: str, data: str) -> None:
        with self._cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {self._signal} (id, type, data) VALUES (%s, %s, %s)",
                (signal_id, kind, data),
            )

    def close(self) -> None:
        """Close the connection (errors ignored)."""
        if self._connection is not None and self._connection.open:
            try:
                self._connection.close()
            except pymysql.err.Error:
                log.debug("closing the chunk connection failed", exc_info=True)
        self._connection = None


__all__ = ["ChunkReader", "bounded_chunk_query"]
