"""What the MySQL source tests share: a source config for a private MariaDB, the
(op, id) view of change records, and a fresh database with table ``items``."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

from omconnect.connect.records import SourceRecord
from omconnect.testing.databases import MariaDBServer

_server_ids = itertools.count(1001)  # replica ids: distinct across the whole session

ITEMS = "CREATE TABLE {db}.items (id INT PRIMARY KEY, name VARCHAR(40), qty INT NOT NULL)"


def source_config(
    server: MariaDBServer, prefix: str, database: str, **extra: str
) -> dict[str, str]:
    """The MySQL source's config for `server`, capturing `database` under topic
    prefix `prefix`, with short poll and reconnect intervals; `extra` overrides."""
    return {
        "database.hostname": server.host,
        "database.port": str(server.port),
        "database.user": server.user,
        "database.password": server.password,
        "database.server.id": str(next(_server_ids)),
        "topic.prefix": prefix,
        "database.include.list": database,
        "poll.interval.ms": "200",
        "connect.backoff.initial.delay.ms": "100",
        "connect.backoff.max.delay.ms": "500",
        **extra,
    }


def ids_of(records: list[SourceRecord]) -> list[tuple[str, int]]:
    """(op, id) of each change record; tombstones as ("tombstone", id); heartbeats
    left out."""
    out: list[tuple[str, int]] = []
    for record in records:
        if record.topic.startswith("__omconnect-heartbeat"):
            continue
        if record.value is None:
            out.append(("tombstone", record.key.as_dict()["id"]))
            continue
        value: Any = record.value.as_dict()
        out.append((value["op"], (value["after"] or value["before"])["id"]))
    return out


def fresh_database(server: MariaDBServer, name: str, *statements: str) -> Iterator[str]:
    """Body of a fixture: database `name` with table ``items`` (and `statements`,
    where ``{db}`` is the name), dropped afterwards."""
    server.execute(
        f"DROP DATABASE IF EXISTS {name}",
        f"CREATE DATABASE {name}",
        ITEMS.format(db=name),
        *(s.format(db=name) for s in statements),
    )
    yield name
    server.execute(f"DROP DATABASE IF EXISTS {name}")
