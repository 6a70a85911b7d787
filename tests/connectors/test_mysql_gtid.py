"""GTID positioning of the MySQL/MariaDB source against real private MariaDB servers:
exact resume inside a transaction when the stored file/position mean nothing (as on
another server), resume after the stored binlog file was purged, and a failover to a
replica that has the same GTID history but its own binlog files."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from mysql_test_support import fresh_database, ids_of, source_config

from omconnect.connect.records import SourceRecord
from omconnect.connectors.mysql.source import MySqlSourceConnector
from omconnect.errors import FatalError
from omconnect.testing.connectors import SourceHarness
from omconnect.testing.databases import MariaDBServer


@pytest.fixture
def database(mariadb_server: MariaDBServer, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh database on the shared server with table ``items``."""
    yield from fresh_database(mariadb_server, "gtid_" + request.node.name.replace("test_", "")[:40])


def _stored(harness: SourceHarness) -> dict[str, Any]:
    return dict(next(iter(harness.offsets.stored.values()))[1])


def _replace_stored(harness: SourceHarness, **fields: Any) -> None:
    key, (partition, offset) = next(iter(harness.offsets.stored.items()))
    harness.offsets.stored[key] = (partition, {**offset, **fields})


def test_resumes_mid_transaction_by_gtid_whatever_file_and_position_say(
    mariadb_server: MariaDBServer, database: str
) -> None:
    config = source_config(mariadb_server, "gtidmid", database, **{"max.batch.size": "2"})
    harness = SourceHarness(MySqlSourceConnector, config)
    try:
        mariadb_server.execute(
            "BEGIN",
            "INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)",
            "UPDATE items SET qty = 20 WHERE id = 2",
            "COMMIT",
            "INSERT INTO items VALUES (4, 'd', 4)",
            database=database,
        )
        first = harness.poll_until(2)
        stored = _stored(harness)
        # As on another server of the topology: this file and position do not exist.
        _replace_stored(harness, file="elsewhere-bin.000042", pos=123456)
        harness.task.stop()
        harness.config["binlog.positioning"] = "file"
        with pytest.raises(FatalError, match=r"elsewhere-bin\.000042:123456 is no longer"):
            harness.restart()
        harness.config["binlog.positioning"] = "auto"
        harness.restart()
        rest = harness.poll_until(3)
        extra = harness.poll_until(1, timeout_s=1.0)
    finally:
        harness.stop()
    assert (
        stored["transaction_gtid"]
        and stored["gtids"]
        and (stored["event"], stored["row"]) == (0, 2)
    )
    assert ids_of(first) == [("c", 1), ("c", 2)]
    assert ids_of(rest) == [("c", 3), ("u", 2), ("c", 4)]
    assert extra == []
    assert rest[-1].source_offset["file"].startswith("binlog.")


def _poll_changes(harness: SourceHarness, count: int) -> list[SourceRecord]:
    records: list[SourceRecord] = []
    deadline = time.monotonic() + 10
    while len(ids_of(records)) < count and time.monotonic() < deadline:
        records += harness.poll_until(1, timeout_s=1.0)
    return records


def test_resumes_by_gtid_after_the_stored_binlog_file_was_purged(mariadb_factory: Any) -> None:
    """The stored GTID position must reach the GTID list at the start of the oldest
    binlog left: here a heartbeat carries the position past the last commit."""
    server = mariadb_factory()
    server.execute(
        "CREATE DATABASE shop",
        "CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40), qty INT NOT NULL)",
    )
    config = source_config(
        server, "gtidpurge", "shop", **{"snapshot.mode": "no_data", "heartbeat.interval.ms": "1"}
    )
    harness = SourceHarness(MySqlSourceConnector, config)
    try:
        server.execute("INSERT INTO items VALUES (1, 'a', 1)", database="shop")
        first = _poll_changes(harness, 1)
        first += harness.poll_until(1)  # a heartbeat after the commit
    finally:
        harness.stop()
    stored = _stored(harness)
    stored_file = stored["file"]
    server.execute("FLUSH BINARY LOGS")
    server.execute("INSERT INTO items VALUES (2, 'b', 2)", database="shop")
    server.purge_binlogs_until_gone(stored_file)
    harness.config["binlog.positioning"] = "file"
    with pytest.raises(FatalError, match="is no longer on the server"):
        harness.restart()
    harness.config["binlog.positioning"] = "gtid"
    harness.restart()
    try:
        rest = _poll_changes(harness, 1)
        server.execute("INSERT INTO items VALUES (3, 'c', 3)", database="shop")
        rest += _poll_changes(harness, 1)
        extra = ids_of(harness.poll_until(1, timeout_s=1.0))
    finally:
        harness.stop()
    assert (stored["event"], stored["row"]) == (0, 0)
    assert ids_of(first + rest) == [("c", 1), ("c", 2), ("c", 3)]
    assert extra == []
    changes = [r for r in rest if r.value is not None and r.topic.startswith("gtidpurge.shop")]
    assert changes[0].source_offset["file"] != stored_file


def test_a_purged_gtid_is_reported_with_the_fix(mariadb_factory: Any) -> None:
    server = mariadb_factory()
    server.execute(
        "CREATE DATABASE shop",
        "CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40), qty INT NOT NULL)",
    )
    config = source_config(server, "gtidgone", "shop", **{"snapshot.mode": "no_data"})
    harness = SourceHarness(MySqlSourceConnector, config)
    try:
        server.execute("INSERT INTO items VALUES (1, 'a', 1)", database="shop")
        harness.poll_until(1)
    finally:
        harness.stop()
    stored_file = _stored(harness)["file"]
    server.execute("INSERT INTO items VALUES (2, 'b', 2)", database="shop")  # not captured
    server.execute("FLUSH BINARY LOGS")
    server.purge_binlogs_until_gone(stored_file)
    harness.restart()
    try:
        with pytest.raises(FatalError, match=r"after GTIDs 0-1-\d+.*snapshot\.mode=when_needed"):
            harness.poll_until(1)
    finally:
        harness.stop()
    harness.config["snapshot.mode"] = "when_needed"
    harness.restart()
    try:
        snapshot = harness.poll_until(2)
    finally:
        harness.stop()
    assert ids_of(snapshot) == [("r", 1), ("r", 2)]


def _gtid_position(server: MariaDBServer, variable: str) -> str:
    connection = server.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(f"SELECT @@{variable}")
            return str(cursor.fetchone()[0] or "")
    finally:
        connection.close()


def _replicate(primary: MariaDBServer, replica: MariaDBServer) -> None:
    replica.execute(
        f"CHANGE MASTER TO MASTER_HOST='{primary.host}', MASTER_PORT={primary.port}, "
        "MASTER_USER='root', MASTER_PASSWORD='', MASTER_USE_GTID=slave_pos",
        "START SLAVE",
    )


def _wait_caught_up(primary: MariaDBServer, replica: MariaDBServer) -> None:
    wanted = _gtid_position(primary, "gtid_binlog_pos")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _gtid_position(replica, "gtid_slave_pos") == wanted:
            return
        time.sleep(0.1)
    raise AssertionError(f"the replica did not reach {wanted}")


def test_fails_over_to_a_replica_mid_transaction(mariadb_factory: Any) -> None:
    """The replica (log_slave_updates) has the primary's GTIDs in binlog files of its
    own, at other positions; the task moves to it inside a transaction."""
    primary = mariadb_factory()
    replica = mariadb_factory(options={"server-id": "2", "log-slave-updates": ""})
    replica.execute("FLUSH BINARY LOGS", "FLUSH BINARY LOGS")  # other files and positions
    _replicate(primary, replica)
    primary.execute(
        "CREATE DATABASE shop",
        "CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40), qty INT NOT NULL)",
    )
    config = source_config(
        primary, "failover", "shop", **{"snapshot.mode": "no_data", "max.batch.size": "2"}
    )
    harness = SourceHarness(MySqlSourceConnector, config)
    try:
        primary.execute(
            "BEGIN",
            "INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)",
            "DELETE FROM items WHERE id = 1",
            "COMMIT",
            "INSERT INTO items VALUES (4, 'd', 4)",
            database="shop",
        )
        first = harness.poll_until(2)
    finally:
        harness.stop()
    stored = _stored(harness)
    _wait_caught_up(primary, replica)
    primary.stop()  # the primary is gone; the replica is promoted
    replica.execute("STOP SLAVE")
    harness.config["database.port"] = str(replica.port)
    harness.restart()
    try:
        rest = harness.poll_until(4)
        replica.execute("INSERT INTO items VALUES (5, 'e', 5)", database="shop")
        rest += harness.poll_until(1)
        extra = harness.poll_until(1, timeout_s=1.0)
    finally:
        harness.stop()
    assert (stored["event"], stored["row"]) == (0, 2)
    assert ids_of(first) == [("c", 1), ("c", 2)]
    assert ids_of(rest) == [("c", 3), ("d", 1), ("tombstone", 1), ("c", 4), ("c", 5)]
    assert extra == []
    sources = [r.value.get("source").as_dict() for r in rest if r.value is not None]
    assert sources[0]["gtid"] == stored["transaction_gtid"]
    assert sources[0]["file"] != stored["file"]  # the replica's own binlog
    assert sources[-1]["server_id"] == 2 and sources[-1]["gtid"].startswith("0-2-")
