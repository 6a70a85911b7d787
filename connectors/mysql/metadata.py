"""The source's records other than row changes: schema changes (DDL), transaction
BEGIN/END, heartbeats. Schemas follow Debezium's names; the schema-change value is
simplified (see docs/connectors/mysql-source.md): ``tableChanges`` lists each
changed table's ``type`` and ``id`` without the column structure.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from omconnect.connect.schema import (
    INT64,
    OPTIONAL_INT64,
    OPTIONAL_STRING,
    STRING,
    Struct,
    array_schema,
    struct_schema,
)

from .events import SOURCE_SCHEMA

SCHEMA_CHANGE_KEY = struct_schema(
    [("databaseName", STRING)], name="io.debezium.connector.mysql.SchemaChangeKey"
)
TABLE_CHANGE = struct_schema([("type", STRING), ("id", STRING)], name="TableChange")
SCHEMA_CHANGE_VALUE = struct_schema(
    [
        ("source", SOURCE_SCHEMA),
        ("ts_ms", INT64),
        ("databaseName", OPTIONAL_STRING),
        ("schemaName", OPTIONAL_STRING),
        ("ddl", OPTIONAL_STRING),
        ("tableChanges", array_schema(TABLE_CHANGE)),
    ],
    name="io.debezium.connector.mysql.SchemaChangeValue",
)
TRANSACTION_KEY = struct_schema(
    [("id", STRING)], name="io.debezium.connector.common.TransactionMetadataKey"
)
DATA_COLLECTION = struct_schema(
    [("data_collection", STRING), ("event_count", INT64)], name="DataCollection"
)
TRANSACTION_VALUE = struct_schema(
    [
        ("status", STRING),
        ("id", STRING),
        ("event_count", OPTIONAL_INT64),
        ("data_collections", array_schema(DATA_COLLECTION, optional=True)),
        ("ts_ms", INT64),
    ],
    name="io.debezium.connector.common.TransactionMetadataValue",
)
HEARTBEAT_KEY = struct_schema(
    [("serverName", STRING)], name="io.debezium.connector.common.ServerNameKey"
)
HEARTBEAT_VALUE = struct_schema([("ts_ms", INT64)], name="io.debezium.connector.common.Heartbeat")

_NAME = r"(?:`(?:[^`]|``)+`|[\w$]+)"
_QUALIFIED = rf"({_NAME}(?:\s*\.\s*{_NAME})?)"
_DDL_TABLES = (
    ("CREATE", re.compile(rf"^CREATE\s+(?:OR\s+REPLACE\s+)?(?:TEMPORARY\s+)?TABLE\s+"
                          rf"(?:IF\s+NOT\s+EXISTS\s+)?{_QUALIFIED}", re.I)),
    ("ALTER", re.compile(rf"^ALTER\s+(?:ONLINE\s+)?(?:IGNORE\s+)?TABLE\s+"
                         rf"(?:IF\s+EXISTS\s+)?{_QUALIFIED}", re.I)),
    ("ALTER", re.compile(rf"^TRUNCATE\s+(?:TABLE\s+)?{_QUALIFIED}", re.I)),
    ("ALTER", re.compile(rf"^(?:CREATE|DROP)\s+(?:UNIQUE\s+|FULLTEXT\s+|SPATIAL\s+)?INDEX\s+"
                         rf"(?:IF\s+(?:NOT\s+)?EXISTS\s+)?{_NAME}\s+ON\s+{_QUALIFIED}", re.I)),
)  # fmt: skip
_DROP = re.compile(r"^DROP\s+(?:TEMPORARY\s+)?TABLES?\s+(?:IF\s+EXISTS\s+)?(.*)$", re.I | re.S)
_RENAME = re.compile(r"^RENAME\s+TABLES?\s+(.*)$", re.I | re.S)
_COMMENT = re.compile(r"/\*.*?\*/", re.S)
_DDL_WORDS = ("CREATE", "ALTER", "DROP", "RENAME", "TRUNCATE")


@dataclass(frozen=True, slots=True)
class TableChange:
    """One table a DDL statement touched: CREATE, ALTER or DROP, and ``(db, table)``."""

    type: str
    database: str
    table: str


def is_ddl(sql: str) -> bool:
    """Whether ``sql`` is a DDL statement (CREATE/ALTER/DROP/RENAME/TRUNCATE)."""
    words = _strip_comments(sql).split(None, 1)
    return bool(words) and words[0].upper() in _DDL_WORDS


def _strip_comments(sql: str) -> str:
    sql = sql.strip()
    while sql.startswith("/*"):
        end = sql.find("*/")
        if end < 0:
            break
        sql = sql[end + 2 :].lstrip()
    return sql


def _unquote(name: str) -> str:
    name = name.strip()
    if name.startswith("`") and name.endswith("`"):
        return name[1:-1].replace("``", "`")
    return name


def _split_name(qualified: str, database: str) -> tuple[str, str]:
    parts = re.findall(_NAME, qualified)
    if len(parts) == 2:
        return _unquote(parts[0]), _unquote(parts[1])
    return database, _unquote(parts[0])


def table_changes(sql: str, database: str) -> list[TableChange]:
    """The tables a DDL statement changes (unqualified names belong to ``database``,
    the statement's default database); empty when no table is named (e.g. CREATE
    DATABASE), so the caller reloads what it cannot tell."""
    text = _COMMENT.sub(" ", sql).strip()
    for kind, pattern in _DDL_TABLES:
        match = pattern.match(text)
        if match:
            return [TableChange(kind, *_split_name(match.group(1), database))]
    if match := _DROP.match(text):
        names = re.findall(_QUALIFIED, match.group(1).split(" RESTRICT")[0].split(" CASCADE")[0])
        return [TableChange("DROP", *_split_name(n, database)) for n in names]
    if match := _RENAME.match(text):
        changes = []
        for pair in match.group(1).split(","):
            names = re.findall(_QUALIFIED, pair)
            if len(names) >= 2:
                changes.append(TableChange("DROP", *_split_name(names[0], database)))
                changes.append(TableChange("CREATE", *_split_name(names[-1], database)))
        return changes
    return []


def schema_change(
    database: str, ddl: str, changes: Sequence[TableChange], source: Struct, ts_ms: int
) -> tuple[Struct, Struct]:
    """Key and value of a schema-change record."""
    key = Struct(SCHEMA_CHANGE_KEY, {"databaseName": database})
    value = Struct(
        SCHEMA_CHANGE_VALUE,
        {
            "source": source,
            "ts_ms": ts_ms,
            "databaseName": database,
            "schemaName": None,
            "ddl": ddl,
            "tableChanges": [
                Struct(TABLE_CHANGE, {"type": c.type, "id": f'"{c.database}"."{c.table}"'})
                for c in changes
            ],
        },
    )
    return key, value


def transaction_record(
    status: str, transaction_id: str, ts_ms: int, counts: Mapping[str, int] | None = None
) -> tuple[Struct, Struct]:
    """Key and value of a transaction BEGIN (``counts`` None) or END record."""
    key = Struct(TRANSACTION_KEY, {"id": transaction_id})
    value = Struct(TRANSACTION_VALUE, {"status": status, "id": transaction_id, "ts_ms": ts_ms})
    if counts is not None:
        value.put("event_count", sum(counts.values()))
        value.put(
            "data_collections",
            [
                Struct(DATA_COLLECTION, {"data_collection": name, "event_count": count})
                for name, count in counts.items()
            ],
        )
    return key, value


def heartbeat(server_name: str, ts_ms: int) -> tuple[Struct, Struct]:
    """Key and value of a heartbeat record."""
    return (
        Struct(HEARTBEAT_KEY, {"serverName": server_name}),
        Struct(HEARTBEAT_VALUE, {"ts_ms": ts_ms}),
    )
