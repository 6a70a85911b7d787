"""Which tables the SQL source reads, and how they are shared among tasks (pure).

A table is a `TableId`: its schema (None for the connection's default schema) and
name. Include/exclude entries name a table as ``name`` or ``schema.name``. The task
configs carry each task's tables under the ``tables`` key, as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

TASK_TABLES_KEY = "tables"
"""Task config key holding the task's tables (`encode_tables`)."""


@dataclass(frozen=True, slots=True, order=True)
class TableId:
    """A table: schema (None: the default schema) and name."""

    schema: str | None
    name: str

    def __str__(self) -> str:
        return self.name if self.schema is None else f"{self.schema}.{self.name}"


def schemas_named(entries: Iterable[str]) -> set[str]:
    """Schemas named by ``schema.name`` entries (tables outside the default schema)."""
    return {entry.rsplit(".", 1)[0] for entry in entries if "." in entry}


def matches(table: TableId, entry: str, default_schema: str | None) -> bool:
    """``entry`` (``name`` or ``schema.name``) names ``table``; a table of the default
    schema matches its bare name and its name qualified with ``default_schema``."""
    if entry == str(table):
        return True
    schema = table.schema if table.schema is not None else default_schema
    return schema is not None and entry == f"{schema}.{table.name}"


def select_tables(
    tables: Iterable[TableId],
    include: Sequence[str],
    exclude: Sequence[str],
    default_schema: str | None = None,
) -> list[TableId]:
    """``tables`` named in ``include`` (all when empty) and not in ``exclude``, sorted
    and without duplicates."""
    chosen = {
        table
        for table in tables
        if (not include or any(matches(table, e, default_schema) for e in include))
        and not any(matches(table, e, default_schema) for e in exclude)
    }
    return sorted(chosen, key=lambda t: (t.schema or "", t.name))


def group_tables(tables: Sequence[TableId], max_tasks: int) -> list[list[TableId]]:
    """``tables`` in at most ``max_tasks`` contiguous groups whose sizes differ by at
    most one (Kafka's ``ConnectorUtils.groupPartitions``); no empty group."""
    count = min(max(max_tasks, 1), len(tables))
    groups: list[list[TableId]] = []
    start = 0
    for index in range(count):
        size = len(tables) // count + (1 if index < len(tables) % count else 0)
        groups.append(list(tables[start : start + size]))
        start += size
    return groups


def encode_tables(tables: Iterable[TableId]) -> str:
    """The ``tables`` task config value for ``tables``."""
    return json.dumps([[t.schema, t.name] for t in tables])


def decode_tables(value: str) -> list[TableId]:
    """The tables of an `encode_tables` value; ValueError if it is not one."""
    items = json.loads(value)
    if not isinstance(items, list):
        raise ValueError("the tables of a task must be a JSON list")
    tables: list[TableId] = []
    for item in items:
        if (
            not isinstance(item, list)
            or len(item) != 2
            or not (item[0] is None or isinstance(item[0], str))
            or not isinstance(item[1], str)
        ):
            raise ValueError(f"not a [schema, name] pair: {item!r}")
        tables.append(TableId(item[0], item[1]))
    return tables
