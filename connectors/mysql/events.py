"""Change events in Debezium's envelope (docs/connectors/cdc-events.md): the key and
value `Struct`s of one row change, built from raw rows.

Structs are built without `Struct.put`'s per-value checks: every value comes from
the table's compiled converter (`values.converter`), which yields values of the
column's schema by construction, and the tests check the result with
``schema.validate``. This keeps an event at a few microseconds.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import omconnect
from omconnect.connect.schema import (
    INT64,
    OPTIONAL_INT64,
    OPTIONAL_STRING,
    STRING,
    Schema,
    Struct,
    Type,
    struct_schema,
)

from .filters import Filters
from .tables import Table
from .values import RowConverter, column_schema, converter, value_columns

SOURCE_SCHEMA_NAME = "io.debezium.connector.mysql.Source"
TRANSACTION_SCHEMA_NAME = "event.block"
CONNECTOR = "mysql"

OPTIONAL_INT32 = Schema(Type.INT32, optional=True)

SOURCE_SCHEMA = struct_schema(
    [
        ("version", STRING),
        ("connector", STRING),
        ("name", STRING),
        ("ts_ms", INT64),
        ("snapshot", OPTIONAL_STRING),
        ("db", STRING),
        ("table", OPTIONAL_STRING),
        ("server_id", INT64),
        ("gtid", OPTIONAL_STRING),
        ("file", STRING),
        ("pos", INT64),
        ("row", Schema(Type.INT32)),
        ("thread", OPTIONAL_INT64),
        ("query", OPTIONAL_STRING),
    ],
    name=SOURCE_SCHEMA_NAME,
)

TRANSACTION_SCHEMA = struct_schema(
    [("id", STRING), ("total_order", INT64), ("data_collection_order", INT64)],
    name=TRANSACTION_SCHEMA_NAME,
    optional=True,
)

KeyValue = tuple[Struct | None, Struct | None]


def make_struct(schema: Schema, values: dict[str, Any]) -> Struct:
    """A `Struct` of ``schema`` holding ``values`` (field name → value) as given,
    unchecked: the caller guarantees they fit (``schema.validate`` checks)."""
    struct = Struct.__new__(Struct)
    struct.schema = schema
    struct._values = values
    return struct


@dataclass(frozen=True, slots=True)
class TableSchemas:
    """The schemas and compiled converters of one `Table` object.

    ``key`` is None when the table has neither a primary key nor
    ``message.key.columns``: its records have no key."""

    table: Table
    key: Schema | None
    value: Schema
    envelope: Schema
    key_columns: tuple[str, ...]
    convert_key: RowConverter | None
    convert_value: RowConverter


class EventBuilder:
    """Builds the records of row changes for one connector (``topic.prefix``).

    Schemas and converters are cached per `Table` object: a table read again after a
    DDL is a new object and gets new ones (the old ones are dropped)."""

    def __init__(
        self,
        topic_prefix: str,
        filters: Filters,
        tombstones_on_delete: bool = True,
        connector_version: str = omconnect.__version__,
    ) -> None:
        self.topic_prefix = topic_prefix
        self.filters = filters
        self.tombstones_on_delete = tombstones_on_delete
        self.connector_version = connector_version
        self._cache: dict[tuple[str, str], TableSchemas] = {}

    def topic(self, table: Table) -> str:
        """``<topic.prefix>.<db>.<table>``."""
        return f"{self.topic_prefix}.{table.database}.{table.name}"

    def source_schema(self) -> Schema:
        """The ``source`` block's schema (``io.debezium.connector.mysql.Source``)."""
        return SOURCE_SCHEMA

    def schemas(self, table: Table) -> TableSchemas:
        """Key, value and envelope schemas (and converters) of ``table``."""
        cached = self._cache.get((table.database, table.name))
        if cached is not None and cached.table is table:
            return cached
        built = self._build(table)
        self._cache[(table.database, table.name)] = built
        return built

    def _build(self, table: Table) -> TableSchemas:
        base = self.topic(table)
        value = struct_schema(
            [(c.name, column_schema(c)) for c in value_columns(table, self.filters)],
            name=f"{base}.Value",
            optional=True,
        )
        envelope = struct_schema(
            [
                ("before", value),
                ("after", value),
                ("source", SOURCE_SCHEMA),
                ("op", STRING),
                ("ts_ms", OPTIONAL_INT64),
                ("transaction", TRANSACTION_SCHEMA),
            ],
            name=f"{base}.Envelope",
        )
        key_columns = self.filters.key_columns(table)
        key = None
        convert_key = None
        if key_columns:
            key = struct_schema(
                [(name, column_schema(table.column(name))) for name in key_columns],
                name=f"{base}.Key",
            )
            convert_key = converter(table, self.filters, key_columns)
        return TableSchemas(
            table,
            key,
            value,
            envelope,
            key_columns,
            convert_key,
            converter(table, self.filters),
        )

    def source(self, fields: Mapping[str, Any]) -> Struct:
        """The ``source`` block from ``fields`` (ts_ms, db, server_id, file, pos, row,
        and the optional ones); version, connector and name are filled in."""
        values = dict.fromkeys(_SOURCE_FIELDS)
        values.update(fields)
        values["version"] = self.connector_version
        values["connector"] = CONNECTOR
        values["name"] = self.topic_prefix
        return make_struct(SOURCE_SCHEMA, values)

    def change_events(
        self,
        table: Table,
        op: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        source: Mapping[str, Any],
        ts_ms: int,
        transaction: Mapping[str, Any] | None = None,
    ) -> list[KeyValue]:
        """The (key, value) records of one row change, in order:

        - ``c``/``r``: the create (or snapshot read) of ``after``;
        - ``u``: the update, or when the key changed a delete of ``before`` (+ its
          tombstone) and a create (op ``c``) of ``after``;
        - ``d``: the delete of ``before`` (+ a tombstone: same key, null value, when
          ``tombstones_on_delete``);
        - ``t``: one truncate event without key.

        ``before``/``after`` are raw rows (binlog or SELECT form); ``source`` the
        source block's fields (see `source`); ``transaction`` the optional
        transaction block (id, total_order, data_collection_order)."""
        schemas = self.schemas(table)
        block = self.source(source)
        tx = None if transaction is None else make_struct(TRANSACTION_SCHEMA, dict(transaction))
        if op in ("c", "r"):
            return [self._event(schemas, op, None, _required(after, op), block, ts_ms, tx)]
        if op == "d":
            return self._delete(schemas, _required(before, op), block, ts_ms, tx)
        if op == "u":
            return self._update(
                schemas, _required(before, op), _required(after, op), block, ts_ms, tx
            )
        if op == "t":
            envelope: dict[str, Any] = {"before": None, "after": None, "source": block}
            envelope |= {"op": "t", "ts_ms": ts_ms, "transaction": tx}
            return [(None, make_struct(schemas.envelope, envelope))]
        raise ValueError(f"unknown op {op!r} (expected c, u, d, r or t)")

    def _update(
        self,
        schemas: TableSchemas,
        before: Mapping[str, Any],
        after: Mapping[str, Any],
        block: Struct,
        ts_ms: int,
        tx: Struct | None,
    ) -> list[KeyValue]:
        convert_key = schemas.convert_key
        if convert_key is not None and convert_key(before) != convert_key(after):
            deleted = self._delete(schemas, before, block, ts_ms, tx)
            return [*deleted, self._event(schemas, "c", None, after, block, ts_ms, tx)]
        return [self._event(schemas, "u", before, after, block, ts_ms, tx)]

    def _delete(
        self,
        schemas: TableSchemas,
        before: Mapping[str, Any],
        block: Struct,
        ts_ms: int,
        tx: Struct | None,
    ) -> list[KeyValue]:
        key, value = self._event(schemas, "d", before, None, block, ts_ms, tx)
        if self.tombstones_on_delete:
            return [(key, value), (key, None)]
        return [(key, value)]

    def _event(
        self,
        schemas: TableSchemas,
        op: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        block: Struct,
        ts_ms: int,
        tx: Struct | None,
    ) -> KeyValue:
        keyed = after if after is not None else before
        key = None
        if schemas.key is not None and schemas.convert_key is not None and keyed is not None:
            key = make_struct(schemas.key, schemas.convert_key(keyed))
        convert = schemas.convert_value
        value_schema = schemas.value
        envelope = {
            "before": None if before is None else make_struct(value_schema, convert(before)),
            "after": None if after is None else make_struct(value_schema, convert(after)),
            "source": block,
            "op": op,
            "ts_ms": ts_ms,
            "transaction": tx,
        }
        return key, make_struct(schemas.envelope, envelope)

    def read_event(
        self,
        schemas: TableSchemas,
        key: dict[str, Any] | None,
        after: dict[str, Any],
        block: Struct,
        ts_ms: int,
    ) -> KeyValue:
        """The snapshot read (op ``r``) of one row already converted: ``after`` as
        ``schemas.convert_value`` returns it, ``key`` as ``schemas.convert_key`` does
        (None when ``schemas.key`` is None); ``block`` from `source`. The same event
        as `change_events` with op ``r``, for a caller that converts a row once."""
        envelope = {
            "before": None,
            "after": make_struct(schemas.value, after),
            "source": block,
            "op": "r",
            "ts_ms": ts_ms,
            "transaction": None,
        }
        record_key = None if key is None or schemas.key is None else make_struct(schemas.key, key)
        return record_key, make_struct(schemas.envelope, envelope)


_SOURCE_FIELDS = tuple(f.name for f in SOURCE_SCHEMA.fields)


def _required(row: Mapping[str, Any] | None, op: str) -> Mapping[str, Any]:
    if row is None:
        raise ValueError(f"op {op!r} needs its row image (before/after)")
    return row
