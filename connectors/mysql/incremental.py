"""Incremental snapshots on demand (Debezium's ``execute-snapshot`` signal), with
DBLog's watermarks: pure logic, no I/O.

A signal row inserted into ``signal.data.collection`` (columns ``id``, ``type``,
``data``) and seen in the binlog queues tables (`parse_signal`,
`IncrementalSnapshot.execute`). While streaming goes on, each table is read in
primary-key chunks, each inside a *window*:

1. the task writes a low watermark row (type ``snapshot-window-open``) to the signal
   table, SELECTs the chunk (keys above the last one, up to the table's maximum key
   when its snapshot began), writes a high watermark (``snapshot-window-close``) and
   hands the rows in (`IncrementalSnapshot.chunk_read`);
2. when the binlog shows the low watermark the window opens; every row change of the
   table seen while it is open drops that key from the chunk (`changed`): the binlog
   event carries a state at least as new as the SELECT's;
3. at the high watermark the rows left are emitted as reads (op ``r``) at that point
   of the stream, and the next chunk follows.

Applying the records in order therefore gives the table's state. The progress
(remaining tables, last key, maximum key) is part of each record's offset
(`as_offset`, Debezium's field names, lists as JSON text), so a restart continues
with the chunk after the last key emitted; watermarks of windows from before a
restart are ignored (their ids are not the current window's).
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from omconnect.errors import FatalError

Key = tuple[Any, ...]
TableId = tuple[str, str]

EXECUTE = "execute-snapshot"
STOP = "stop-snapshot"
WINDOW_OPEN = "snapshot-window-open"
WINDOW_CLOSE = "snapshot-window-close"

COLLECTIONS = "incremental_snapshot_collections"
PRIMARY_KEY = "incremental_snapshot_primary_key"
MAXIMUM_KEY = "incremental_snapshot_maximum_key"


@dataclass(frozen=True, slots=True)
class Signal:
    """One signal row: ``type`` and, for execute/stop, the data collections named
    (``db.table`` strings, as written) and the snapshot type."""

    id: str
    type: str
    collections: tuple[str, ...] = ()
    snapshot_type: str = "incremental"


def parse_signal(row: Mapping[str, Any]) -> Signal:
    """A signal table row (``id``, ``type``, ``data`` JSON text) as a `Signal`.
    `ValueError` (with the reason) when ``data`` is not what its type needs."""
    signal_id = str(row.get("id") or "")
    kind = str(row.get("type") or "").strip().lower()
    if kind not in (EXECUTE, STOP):
        return Signal(signal_id, kind)
    text = row.get("data")
    if isinstance(text, bytes):
        text = text.decode()
    try:
        data = json.loads(text) if text else {}
    except json.JSONDecodeError as exc:
        raise ValueError(f"signal {signal_id!r}: data is not JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise ValueError(f"signal {signal_id!r}: data must be a JSON object")
    collections = data.get("data-collections") or []
    if not isinstance(collections, list) or not all(isinstance(c, str) for c in collections):
        raise ValueError(f"signal {signal_id!r}: data-collections must be a list of names")
    if kind == EXECUTE and not collections:
        raise ValueError(f"signal {signal_id!r}: data-collections is empty")
    snapshot_type = str(data.get("type") or "incremental").lower()
    return Signal(signal_id, kind, tuple(collections), snapshot_type)


# --- JSON encoding of keys (offset values must be JSON scalars) -------------------------


def _encode_value(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, Decimal):
        return {"decimal": str(value)}
    if isinstance(value, bytes | bytearray):
        return {"base64": base64.b64encode(bytes(value)).decode()}
    return {"text": str(value)}  # dates, times: MySQL compares their text form


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        if "decimal" in value:
            return Decimal(value["decimal"])
        if "base64" in value:
            return base64.b64decode(value["base64"])
        return str(value.get("text", ""))
    return value


def encode_key(key: Key | None) -> str:
    """A key as JSON text ("" for none) for the flat offset map."""
    return "" if key is None else json.dumps([_encode_value(v) for v in key])


def decode_key(text: Any) -> Key | None:
    """The inverse of `encode_key`: values usable as query parameters."""
    if not text:
        return None
    return tuple(_decode_value(v) for v in json.loads(str(text)))


def table_name(table: TableId) -> str:
    """``db.table``."""
    return f"{table[0]}.{table[1]}"


def parse_table_name(name: str) -> TableId:
    """``db.table`` → (db, table); `ValueError` without a dot."""
    database, dot, table = name.strip().partition(".")
    if not dot or not database or not table:
        raise ValueError(f"{name!r} is not a <database>.<table> name")
    return database, table


# --- the snapshot state ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChunkRequest:
    """What the task must do next: read ``table``'s maximum key (``needs_maximum``),
    or write ``open_id``, SELECT the keys in (``after``, ``maximum``] (``after`` None:
    from the first), write ``close_id``, and call `IncrementalSnapshot.chunk_read`."""

    table: TableId
    after: Key | None
    maximum: Key | None
    needs_maximum: bool
    open_id: str = ""
    close_id: str = ""


@dataclass(frozen=True, slots=True)
class ChunkRow:
    """A row to emit as a read, with the offset fields that say it was emitted."""

    table: TableId
    row: dict[str, Any]
    offset: dict[str, str]


@dataclass(slots=True)
class _Window:
    request: ChunkRequest
    rows: dict[Key, tuple[Key, dict[str, Any]]] = field(default_factory=dict)
    last_selected: Key | None = None
    complete: bool = False  # fewer rows than the chunk size: the table ends here
    loaded: bool = False
    open: bool = False


class IncrementalSnapshot:
    """The state of the incremental snapshot (see the module docstring).

    ``dedup_key`` turns a row of a table (SELECT or binlog form) into the key that
    identifies it in both forms; chunk rows carry their page key (raw primary-key
    values for the next query) separately."""

    def __init__(
        self,
        collections: Iterable[TableId] = (),
        last_key: Key | None = None,
        maximum_key: Key | None = None,
        new_id: Callable[[], str] = lambda: uuid.uuid4().hex,
    ) -> None:
        self.collections: list[TableId] = list(collections)
        self.last_key = last_key if self.collections else None
        self.maximum_key = maximum_key if self.collections else None
        self.rows_emitted = 0
        self.estimated_total: int | None = None
        self._window: _Window | None = None
        self._new_id = new_id

    @classmethod
    def from_offset(cls, stored: Mapping[str, Any]) -> IncrementalSnapshot:
        """The state stored in an offset (none: idle). `FatalError` if malformed."""
        try:
            names = json.loads(str(stored.get(COLLECTIONS) or "[]"))
            tables = [parse_table_name(n) for n in names]
            last = decode_key(stored.get(PRIMARY_KEY))
            return cls(tables, last, decode_key(stored.get(MAXIMUM_KEY)))
        except (ValueError, TypeError) as exc:
            raise FatalError(f"stored incremental snapshot state is not readable: {exc}") from exc

    @property
    def active(self) -> bool:
        """Whether tables remain to be read."""
        return bool(self.collections)

    @property
    def current(self) -> TableId | None:
        """The table being read."""
        return self.collections[0] if self.collections else None

    def as_offset(self, last_key: Key | None = None) -> dict[str, str]:
        """The offset fields of the current state (``last_key``: instead of the
        state's; all empty when idle)."""
        if not self.collections:
            return {COLLECTIONS: "", PRIMARY_KEY: "", MAXIMUM_KEY: ""}
        return {
            COLLECTIONS: json.dumps([table_name(t) for t in self.collections]),
            PRIMARY_KEY: encode_key(last_key if last_key is not None else self.last_key),
            MAXIMUM_KEY: encode_key(self.maximum_key),
        }

    # -- signals --------------------------------------------------------------------
    def execute(self, tables: Iterable[TableId]) -> list[TableId]:
        """Queue ``tables`` (those already queued are not added twice); the added."""
        added = [t for t in dict.fromkeys(tables) if t not in self.collections]
        self.collections.extend(added)
        return added

    def stop(self, tables: Iterable[TableId] | None = None) -> None:
        """Stop the snapshot of ``tables`` (None: of all); a window of a stopped table
        is dropped."""
        drop = set(self.collections if tables is None else tables)
        if self.current in drop:
            self._next_table()
        self.collections = [t for t in self.collections if t not in drop]

    # -- windows --------------------------------------------------------------------
    def next_window(self) -> ChunkRequest | None:
        """What to do next when no window is pending; None when nothing is."""
        if self._window is not None or not self.collections:
            return None
        table = self.collections[0]
        if self.maximum_key is None:
            return ChunkRequest(table, None, None, needs_maximum=True)
        request = ChunkRequest(
            table,
            self.last_key,
            self.maximum_key,
            needs_maximum=False,
            open_id=f"{self._new_id()}-open",
            close_id=f"{self._new_id()}-close",
        )
        self._window = _Window(request)
        return request

    def set_maximum(self, maximum: Key | None, estimated_rows: int = 0) -> None:
        """The current table's largest key now (None: it is empty, so it is done)."""
        if maximum is None:
            self._next_table()
            return
        self.maximum_key = maximum
        self.estimated_total = (self.estimated_total or 0) + estimated_rows

    def skip_table(self) -> None:
        """Give up the current table (gone, or without a primary key)."""
        self._next_table()

    def chunk_read(self, rows: list[tuple[Key, Key, dict[str, Any]]], chunk_size: int) -> None:
        """The SELECTed chunk of the pending window: (dedup key, page key, row) in key
        order."""
        window = self._window
        if window is None:
            raise RuntimeError("chunk_read without a pending window")
        window.rows = {dedup: (page, row) for dedup, page, row in rows}
        window.last_selected = rows[-1][1] if rows else None
        window.complete = len(rows) < chunk_size
        window.loaded = True

    def changed(self, table: TableId, key: Key) -> None:
        """A binlog row change of ``table`` with (dedup) ``key``."""
        window = self._window
        if window is not None and window.open and table == window.request.table:
            window.rows.pop(key, None)

    def watermark(self, signal_id: str) -> list[ChunkRow]:
        """A watermark row seen in the binlog: the rows to emit now (those left at
        the current window's high watermark, with their offsets), else none."""
        window = self._window
        if window is None or not window.loaded:
            return []
        if signal_id == window.request.open_id:
            window.open = True
            return []
        if signal_id != window.request.close_id or not window.open:
            return []
        table = window.request.table
        out = [
            ChunkRow(table, row, self.as_offset(last_key=page))
            for page, row in window.rows.values()
        ]
        self.rows_emitted += len(out)
        self._window = None
        if window.complete or window.last_selected is None:
            self._next_table()
        else:
            self.last_key = window.last_selected
        return out

    def abandon(self) -> None:
        """Drop the pending window (the binlog reader restarts); its chunk is read
        again in a new window."""
        self._window = None

    def _next_table(self) -> None:
        self._window = None
        if self.collections:
            self.collections.pop(0)
        self.last_key = None
        self.maximum_key = None
