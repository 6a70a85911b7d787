"""Sink records → row changes (pure): which table, which operation, which key and row.

A record is one of:

* a Debezium change event (a value with ``before``, ``after`` and ``op``, as a
  `Struct` or a schemaless dict): ``c``/``r``/``u`` upsert ``after``, ``d`` deletes by
  key, ``t`` empties the table (both only with ``delete.enabled``);
* a tombstone (null value): deletes by key with ``delete.enabled``, else skipped;
* any other `Struct` or dict: upserted (or inserted/updated, per ``insert.mode``).

The primary key comes from the record key (``pk.mode=record_key``: its struct or
dict fields, or the one ``pk.fields`` column for a primitive key) or from value
fields (``record_value``). Column values are converted with `to_db_value`. A record
that cannot be read raises `RecordError` with the reason.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from omconnect.connect.records import SinkRecord
from omconnect.connect.schema import Schema, Struct
from omconnect.connectors.sql.dialects import DialectRules
from omconnect.connectors.sql.sink_config import SqlSinkConfig, table_name
from omconnect.connectors.sql.sink_values import to_db_value
from omconnect.errors import RecordError

ENVELOPE_FIELDS = frozenset({"before", "after", "op"})


class Op(enum.Enum):
    """What a change does to its table."""

    UPSERT = "upsert"
    DELETE = "delete"
    TRUNCATE = "truncate"


@dataclass(frozen=True, slots=True)
class Column:
    """A column as the record's schema describes it (for auto.create/auto.evolve)."""

    name: str
    schema: Schema
    is_key: bool


@dataclass(frozen=True, slots=True)
class Change:
    """One row change. ``key``: primary-key column → database value, in key order
    (empty with ``pk.mode=none``). ``row``: every column to write, key columns first
    (UPSERT only). ``columns``: their schemas, or None for schemaless records."""

    record: SinkRecord
    table: str
    op: Op
    key: dict[str, Any]
    row: dict[str, Any]
    columns: tuple[Column, ...] | None


@dataclass(frozen=True, slots=True)
class _Envelope:
    op: str
    after: Any
    db: str | None
    table: str | None


# (name, schema or None, value) of each field of a struct or dict
_Fields = list[tuple[str, Schema | None, Any]]


class ChangeReader:
    """Reads records per one sink config, with values shaped for one dialect."""

    def __init__(self, config: SqlSinkConfig, rules: DialectRules) -> None:
        self._config = config
        self._rules = rules

    def read(self, record: SinkRecord) -> Change | None:
        """The change ``record`` asks for, or None if it asks for nothing (a delete or
        tombstone with ``delete.enabled=false``). `RecordError` if it cannot be read."""
        envelope = _envelope(record.value)
        table = self._table(record, envelope)
        if record.value is None:
            return self._delete(record, table) if self._config.delete_enabled else None
        if envelope is None:
            return self._upsert(record, table, _fields(record.value, "value"))
        if envelope.op in ("c", "r", "u"):
            if envelope.after is None:
                raise RecordError(f"change event with op {envelope.op!r} has no 'after' row")
            return self._upsert(record, table, _fields(envelope.after, "after"))
        if envelope.op == "d":
            return self._delete(record, table) if self._config.delete_enabled else None
        if envelope.op == "t":
            if not self._config.delete_enabled:
                return None
            return Change(record, table, Op.TRUNCATE, {}, {}, None)
        raise RecordError(f"change event has an unknown op {envelope.op!r}")

    def _table(self, record: SinkRecord, envelope: _Envelope | None) -> str:
        db = envelope.db if envelope else None
        source_table = envelope.table if envelope else None
        try:
            return table_name(self._config.table_name_format, record.topic, db, source_table)
        except ValueError as exc:
            raise RecordError(str(exc)) from None

    def _delete(self, record: SinkRecord, table: str) -> Change:
        key = self._convert(self._key_fields(record))
        return Change(record, table, Op.DELETE, key, {}, None)

    def _upsert(self, record: SinkRecord, table: str, value_fields: _Fields) -> Change:
        mode = self._config.pk_mode
        if mode == "record_key":
            key_fields = self._key_fields(record)
        elif mode == "record_value":
            key_fields = _select(value_fields, self._config.pk_fields, "value")
        else:
            key_fields = []
        key_names = {name for name, _, _ in key_fields}
        fields = key_fields + [f for f in value_fields if f[0] not in key_names]
        row = self._convert(fields)
        key = {name: row[name] for name, _, _ in key_fields}
        return Change(record, table, Op.UPSERT, key, row, _columns(fields, key_names))

    def _key_fields(self, record: SinkRecord) -> _Fields:
        if record.key is None:
            raise RecordError(
                "the record has no key, but pk.mode=record_key takes the primary key from it"
            )
        if isinstance(record.key, Struct | Mapping):
            return _select(_fields(record.key, "key"), self._config.pk_fields, "key")
        if len(self._config.pk_fields) != 1:
            raise RecordError(
                "the record key is a single value: pk.fields must name its one column"
            )
        return [(self._config.pk_fields[0], record.key_schema, record.key)]

    def _convert(self, fields: _Fields) -> dict[str, Any]:
        row: dict[str, Any] = {}
        for name, schema, value in fields:
            try:
                row[name] = to_db_value(self._rules, schema, value)
            except ValueError as exc:
                raise RecordError(f"field {name!r}: {exc}") from None
        return row


def _envelope(value: Any) -> _Envelope | None:
    """The change-event parts of ``value``, or None if it is not a change event."""
    if isinstance(value, Struct):
        schema = value.schema
        if any(schema.field(name) is None for name in ENVELOPE_FIELDS):
            return None
        source = value.get("source") if schema.field("source") is not None else None
        return _Envelope(str(value.get("op")), value.get("after"), *_source(source))
    if (
        isinstance(value, Mapping)
        and value.keys() >= ENVELOPE_FIELDS
        and isinstance(value["op"], str)
    ):
        return _Envelope(value["op"], value["after"], *_source(value.get("source")))
    return None


def _source(source: Any) -> tuple[str | None, str | None]:
    """``db`` and ``table`` of a change event's source block (None where absent)."""
    if isinstance(source, Struct):
        has = source.schema.field
        db = _text(source.get("db")) if has("db") is not None else None
        return db, _text(source.get("table")) if has("table") is not None else None
    if isinstance(source, Mapping):
        return _text(source.get("db")), _text(source.get("table"))
    return None, None


def _text(value: Any) -> str | None:
    return None if value is None else str(value)


def _fields(value: Any, what: str) -> _Fields:
    if isinstance(value, Struct):
        return [(f.name, f.schema, value.get(f.name)) for f in value.schema.fields]
    if isinstance(value, Mapping):
        return [(str(k), None, v) for k, v in value.items()]
    raise RecordError(f"the record {what} must be a struct or a map, not {type(value).__name__}")


def _select(fields: _Fields, names: list[str], what: str) -> _Fields:
    """The fields named in ``names`` (all when empty), in ``names`` order."""
    if not names:
        return fields
    by_name = {f[0]: f for f in fields}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise RecordError(f"pk.fields {missing} are not fields of the record {what}")
    return [by_name[n] for n in names]


def _columns(fields: _Fields, key_names: set[str]) -> tuple[Column, ...] | None:
    columns = []
    for name, schema, _ in fields:
        if schema is None:
            return None
        columns.append(Column(name, schema, name in key_names))
    return tuple(columns)
