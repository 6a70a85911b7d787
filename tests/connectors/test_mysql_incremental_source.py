"""The incremental snapshot against a real private MariaDB: an execute-snapshot
signal while rows change concurrently, a restart in the middle, and the records
applied in order equal the table."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from mysql_test_support import fresh_database

from omconnect.connect.connector import TaskProgress
from omconnect.connect.records import SourceRecord
from omconnect.connectors.mysql.source import MySqlSourceConnector
from omconnect.testing.connectors import SourceHarness
from omconnect.testing.databases import MariaDBServer

SIGNAL_TABLE = "CREATE TABLE {db}.signals (id VARCHAR(42) PRIMARY KEY, type VARCHAR(32), data TEXT)"


@pytest.fixture
def database(mariadb_server: MariaDBServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database with tables ``items`` and ``signals`` (the signal table)."""
    name = "inc_" + request.node.name.replace("test_", "")[:40]
    yield from fresh_database(mariadb_server, name, SIGNAL_TABLE)


def _config(server: MariaDBServer, database: str) -> dict[str, str]:
    return {
        "database.hostname": server.host,
        "database.port": str(server.port),
        "database.user": "root",
        "database.server.id": "7301",
        "topic.prefix": "inc",
        "database.include.list": database,
        "table.exclude.list": f"{database}.signals",
        "snapshot.mode": "no_data",
        "signal.data.collection": f"{database}.signals",
        "incremental.snapshot.chunk.size": "7",
        "max.batch.size": "20",
        "poll.interval.ms": "100",
    }


def _apply(state: dict[int, dict[str, Any]], records: list[SourceRecord]) -> None:
    for record in records:
        if record.value is None:
            continue
        value = record.value.as_dict()
        if value["op"] == "d":
            state.pop(value["before"]["id"], None)
        else:
            state[value["after"]["id"]] = value["after"]


def _writer(server: MariaDBServer, database: str, stop: threading.Event) -> None:
    rng = random.Random(7)
    connection = server.connect(database)
    try:
        with connection.cursor() as cursor:
            for step in range(400):
                if stop.is_set():
                    return
                key = rng.randint(1, 160)
                choice = rng.random()
                if choice < 0.4:
                    cursor.execute("UPDATE items SET qty = qty + 1 WHERE id = %s", (key,))
                elif choice < 0.6:
                    cursor.execute("DELETE FROM items WHERE id = %s", (key,))
                elif choice < 0.8:
                    cursor.execute(
                        "INSERT INTO items VALUES (%s, %s, %s)"
                        " ON DUPLICATE KEY UPDATE name = VALUES(name)",
                        (key, f"w{step}", step),
                    )
                else:
                    cursor.execute("BEGIN")
                    cursor.execute("UPDATE items SET qty = -qty WHERE id BETWEEN %s AND %s",
                                   (key, key + 5))  # fmt: skip
                    cursor.execute("DELETE FROM items WHERE id = %s", (key + 6,))
                    cursor.execute("COMMIT")
                time.sleep(0.002)
    finally:
        connection.close()


def _table(server: MariaDBServer, database: str) -> dict[int, dict[str, Any]]:
    connection = server.connect(database)
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, name, qty FROM items")
            return {row[0]: {"id": row[0], "name": row[1], "qty": row[2]} for row in cursor}
    finally:
        connection.close()


def test_incremental_snapshot_while_rows_change_equals_the_table(
    mariadb_server: MariaDBServer, database: str
) -> None:
    mariadb_server.execute(
        "INSERT INTO items VALUES " + ", ".join(f"({i}, 'n{i}', {i})" for i in range(1, 121)),
        database=database,
    )
    harness = SourceHarness(MySqlSourceConnector, _config(mariadb_server, database))
    state: dict[int, dict[str, Any]] = {}
    records: list[SourceRecord] = []
    progress: list[TaskProgress] = []
    stop = threading.Event()
    writer = threading.Thread(target=_writer, args=(mariadb_server, database, stop))
    try:
        harness.poll_until(1, timeout_s=0.5)  # the reader is positioned before the signal
        data = json.dumps({"data-collections": [f"{database}.items"], "type": "incremental"})
        mariadb_server.execute(
            f"INSERT INTO signals VALUES ('sig-1', 'execute-snapshot', '{data}')",
            database=database,
        )
        writer.start()
        restarted = False
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            batch = harness.poll_until(1, timeout_s=1.0)
            records += batch
            _apply(state, batch)
            current = harness.task.progress()
            if current is not None:
                progress.append(current)
            reads = sum(1 for r in records if r.value is not None and r.value.get("op") == "r")
            if not restarted and reads >= 20:
                harness.restart()  # continues from the stored incremental state
                restarted = True
            if not writer.is_alive() and current is None and not batch and restarted:
                break
    finally:
        stop.set()
        if writer.is_alive():
            writer.join()
        harness.stop()
    assert restarted
    assert progress and progress[0].phase == "incremental-snapshot"
    reads = [r for r in records if r.value is not None and r.value.get("op") == "r"]
    assert len(reads) >= 20
    assert {r.value.get("source").get("snapshot") for r in reads} == {"incremental"}
    assert all(r.topic == f"inc.{database}.items" for r in records if r.value is not None)
    assert state == _table(mariadb_server, database)


def test_stop_snapshot_ends_it(mariadb_server: MariaDBServer, database: str) -> None:
    mariadb_server.execute(
        "INSERT INTO items VALUES " + ", ".join(f"({i}, 'n{i}', {i})" for i in range(1, 50)),
        database=database,
    )
    config = {**_config(mariadb_server, database), "database.server.id": "7302"}
    harness = SourceHarness(MySqlSourceConnector, config)
    try:
        harness.poll_until(1, timeout_s=0.5)
        data = json.dumps({"data-collections": [f"{database}.items"]})
        mariadb_server.execute(
            f"INSERT INTO signals VALUES ('sig-1', 'execute-snapshot', '{data}')",
            database=database,
        )
        first = harness.poll_until(1)
        mariadb_server.execute(
            "INSERT INTO signals VALUES ('sig-2', 'stop-snapshot', NULL)", database=database
        )
        rest = harness.poll_until(100, timeout_s=3.0)
        progress = harness.task.progress()
        mariadb_server.execute("INSERT INTO items VALUES (500, 'late', 1)", database=database)
        late = harness.poll_until(1)
    finally:
        harness.stop()
    assert first and first[0].value.get("op") == "r"
    assert len(first + rest) < 49
    assert progress is None
    assert [r.value.get("op") for r in late] == ["c"]
    assert late[0].source_offset["incremental_snapshot_collections"] == ""
    assert first[0].source_offset["incremental_snapshot_collections"] == f'["{database}.items"]'
