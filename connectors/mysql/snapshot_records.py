"""The records of the initial snapshot's rows: one read event (op ``r``) per row.

`SnapshotRecords` is `EventBuilder.change_events` with op ``r`` made cheap for a
stream of rows: each row is converted once (its key is taken from its converted
value), through a converter compiled per table and SELECT (`values.positional_converter`),
and the ``source`` block is shared by the rows of one table read in the same
millisecond (its fields are the same).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from omconnect.connect.records import SourceRecord
from omconnect.connect.schema import Struct

from .events import EventBuilder, TableSchemas
from .offsets import BinlogOffset
from .snapshot import SnapshotRow
from .tables import Table
from .values import positional_converter


@dataclass(slots=True)
class _Compiled:
    """What the rows of one table read by one SELECT share."""

    table: Table
    names: tuple[str, ...]
    schemas: TableSchemas
    topic: str
    convert: Callable[[Sequence[Any]], dict[str, Any]]
    key_of: Callable[[dict[str, Any], Sequence[Any]], dict[str, Any]] | None
    block: Struct | None = None
    block_at: tuple[int, bool] = (-1, False)


class SnapshotRecords:
    """Builds the records of the rows of one snapshot taken at ``offset``."""

    def __init__(
        self,
        builder: EventBuilder,
        offset: BinlogOffset,
        partition: Mapping[str, Any],
        server_id: int,
    ) -> None:
        self._builder = builder
        self._offset = offset
        self._partition = dict(partition)
        self._server_id = server_id
        stored = offset.as_offset()
        # the last row's offset ends the snapshot (SourceRecord copies these)
        self._stored = {last: stored | {"snapshot": not last} for last in (False, True)}
        self._compiled: dict[tuple[str, str], _Compiled] = {}

    def record(self, item: SnapshotRow) -> SourceRecord:
        """The read event of one row."""
        compiled = self._compile(item.table, item.names)
        now = int(time.time() * 1000)
        block = compiled.block
        if block is None or compiled.block_at != (now, item.last):
            block = compiled.block = self._source(item, now)
            compiled.block_at = (now, item.last)
        value = compiled.convert(item.row)
        key = None if compiled.key_of is None else compiled.key_of(value, item.row)
        schemas = compiled.schemas
        key_struct, envelope = self._builder.read_event(schemas, key, value, block, now)
        return SourceRecord(
            compiled.topic,
            None,
            schemas.key if key_struct is not None else None,
            key_struct,
            schemas.envelope,
            envelope,
            timestamp=now,
            source_partition=self._partition,
            source_offset=self._stored[item.last],
        )

    def _source(self, item: SnapshotRow, now: int) -> Struct:
        return self._builder.source(
            {
                "ts_ms": now,
                "snapshot": "last" if item.last else "true",
                "db": item.table.database,
                "table": item.table.name,
                "server_id": self._server_id,
                "file": self._offset.file,
                "pos": self._offset.pos,
                "row": 0,
            }
        )

    def _compile(self, table: Table, names: tuple[str, ...]) -> _Compiled:
        compiled = self._compiled.get((table.database, table.name))
        if compiled is not None and compiled.table is table and compiled.names is names:
            return compiled
        if compiled is not None and compiled.table is table and compiled.names == names:
            compiled.names = names  # the next chunk's equal names: `is` from now on
            return compiled
        schemas = self._builder.schemas(table)
        filters = self._builder.filters
        convert = positional_converter(table, filters, names)
        compiled = _Compiled(
            table,
            names,
            schemas,
            self._builder.topic(table),
            convert,
            _key_of(schemas, {f.name for f in schemas.value.fields}, names),
        )
        self._compiled[(table.database, table.name)] = compiled
        return compiled


def _key_of(
    schemas: TableSchemas, value_fields: set[str], names: tuple[str, ...]
) -> Callable[[dict[str, Any], Sequence[Any]], dict[str, Any]] | None:
    """How a row's key values come: from its converted value when every key column is
    in it (the same conversion), else by converting the raw row's key columns."""
    columns = schemas.key_columns
    if schemas.key is None or schemas.convert_key is None:
        return None
    if len(columns) == 1 and columns[0] in value_fields:
        only = columns[0]
        return lambda value, _row: {only: value[only]}
    if all(c in value_fields for c in columns):
        return lambda value, _row: {c: value[c] for c in columns}
    convert_key = schemas.convert_key
    return lambda _value, row: convert_key(dict(zip(names, row, strict=True)))
