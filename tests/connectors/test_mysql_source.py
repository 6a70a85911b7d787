"""The MySQL/MariaDB CDC source against a real private MariaDB (binlog ROW/FULL/FULL):
snapshot, streaming, exact resume, rotation, server restarts, purged positions,
preconditions and DDL."""

from __future__ import annotations

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
    yield from fresh_database(mariadb_server, "cdc_" + request.node.name.replace("test_", "")[:40])


def _values(records: list[SourceRecord]) -> list[tuple[str, Any, Any]]:
    """(op, before, after) of the change records (tombstones as ("tombstone", key))."""
    out: list[tuple[str, Any, Any]] = []
    for record in records:
        if record.value is None:
            out.append(("tombstone", record.key.as_dict(), None))
            continue
        value = record.value.as_dict()
        out.append((value["op"], value["before"], value["after"]))
    return out


def _nothing_more(harness: SourceHarness) -> list[SourceRecord]:
    """What a further poll brings when nothing changed (must be nothing)."""
    return harness.poll_until(1, timeout_s=1.0)


def test_snapshot_then_streams_inserts_updates_deletes(
    mariadb_server: MariaDBServer, database: str
) -> None:
    mariadb_server.execute(
        *(f"INSERT INTO items VALUES ({i}, 'n{i}', {i})" for i in range(1, 6)), database=database
    )
    config = source_config(
        mariadb_server, "snap", database, **{"snapshot.fetch.size": "2", "max.batch.size": "2"}
    )
    harness = SourceHarness(MySqlSourceConnector, config)
    try:
        snapshot = harness.poll_until(2)
        progress = harness.task.progress()
        snapshot += harness.poll_until(3)
        progress_after = harness.task.progress()
        mariadb_server.execute(
            "INSERT INTO items VALUES (6, 'six', 6)",
            "UPDATE items SET qty = 60 WHERE id = 6",
            "DELETE FROM items WHERE id = 1",
            database=database,
        )
        streamed = harness.poll_until(4)
    finally:
        harness.stop()
    assert [r.topic for r in snapshot] == [f"snap.{database}.items"] * 5
    assert [v[2]["id"] for v in _values(snapshot)] == [1, 2, 3, 4, 5]
    assert {v[0] for v in _values(snapshot)} == {"r"}
    sources = [r.value.get("source").as_dict() for r in snapshot]
    assert [s["snapshot"] for s in sources] == ["true"] * 4 + ["last"]
    assert snapshot[-1].source_offset["snapshot"] is False
    assert snapshot[0].source_offset["snapshot"] is True
    assert progress is not None and progress.phase == "snapshot" and progress.done >= 2
    assert progress.total is not None
    assert progress_after is None
    assert _values(streamed) == [
        ("c", None, {"id": 6, "name": "six", "qty": 6}),
        ("u", {"id": 6, "name": "six", "qty": 6}, {"id": 6, "name": "six", "qty": 60}),
        ("d", {"id": 1, "name": "n1", "qty": 1}, None),
        ("tombstone", {"id": 1}, None),
    ]
    source = streamed[0].value.get("source").as_dict()
    assert source["db"] == database and source["table"] == "items"
    assert source["snapshot"] == "false" and source["gtid"] and source["file"].startswith("binlog")
    assert streamed[0].key.as_dict() == {"id": 6}


def test_resumes_mid_transaction_without_loss_or_duplicates(
    mariadb_server: MariaDBServer, database: str
) -> None:
    config = source_config(mariadb_server, "midtx", database, **{"max.batch.size": "2"})
    harness = SourceHarness(MySqlSourceConnector, config)
    try:
        mariadb_server.execute(
            "BEGIN",
            "INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 2), (3, 'c', 3)",
            "INSERT INTO items VALUES (4, 'd', 4)",
            "UPDATE items SET qty = 20 WHERE id = 2",
            "DELETE FROM items WHERE id = 3",
            "COMMIT",
            "INSERT INTO items VALUES (5, 'e', 5)",
            database=database,
        )
        first = harness.poll_until(2)  # rows 1 and 2 of the first row event
        harness.restart()
        second = harness.poll_until(2)  # row 3 of the first event and the next event
        harness.restart()
        third = harness.poll_until(4)
        extra = _nothing_more(harness)
    finally:
        harness.stop()
    assert ids_of(first) == [("c", 1), ("c", 2)]
    assert first[-1].source_offset["event"] == 0 and first[-1].source_offset["row"] == 2
    assert ids_of(second) == [("c", 3), ("c", 4)]
    assert ids_of(third) == [("u", 2), ("d", 3), ("tombstone", 3), ("c", 5)]
    assert extra == []


def test_reconnects_after_the_binlog_connection_is_killed(
    mariadb_server: MariaDBServer, database: str
) -> None:
    config = source_config(mariadb_server, "killed", database, **{"max.batch.size": "1"})
    harness = SourceHarness(MySqlSourceConnector, config)
    try:
        mariadb_server.execute(
            "BEGIN",
            "INSERT INTO items VALUES (1, 'a', 1), (2, 'b', 2)",
            "INSERT INTO items VALUES (3, 'c', 3)",
            "COMMIT",
            database=database,
        )
        first = harness.poll_until(1)
        _kill_binlog_dumps(mariadb_server)
        mariadb_server.execute("INSERT INTO items VALUES (4, 'd', 4)", database=database)
        rest = harness.poll_until(3)
        extra = _nothing_more(harness)
    finally:
        harness.stop()
    assert ids_of(first + rest) == [("c", 1), ("c", 2), ("c", 3), ("c", 4)]
    assert extra == []


def _kill_binlog_dumps(server: MariaDBServer) -> None:
    connection = server.connect()
    try:
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'"
            )
            for (thread,) in cursor.fetchall():
                cursor.execute(f"KILL {int(thread)}")
    finally:
        connection.close()


def test_follows_flush_binary_logs(mariadb_server: MariaDBServer, database: str) -> None:
    harness = SourceHarness(MySqlSourceConnector, source_config(mariadb_server, "rot", database))
    try:
        mariadb_server.execute("INSERT INTO items VALUES (1, 'a', 1)", database=database)
        before = harness.poll_until(1)
        mariadb_server.execute("FLUSH BINARY LOGS")
        mariadb_server.execute("INSERT INTO items VALUES (2, 'b', 2)", database=database)
        after = harness.poll_until(1)
        harness.restart()
        mariadb_server.execute("INSERT INTO items VALUES (3, 'c', 3)", database=database)
        resumed = harness.poll_until(1)
        extra = _nothing_more(harness)
    finally:
        harness.stop()
    assert ids_of(before + after + resumed) == [("c", 1), ("c", 2), ("c", 3)]
    file_before = before[0].value.get("source").get("file")
    file_after = after[0].value.get("source").get("file")
    assert file_after != file_before
    assert after[0].source_offset["file"] == file_after
    assert extra == []


def test_survives_a_mariadb_restart_mid_stream(mariadb_factory: Any) -> None:
    server = mariadb_factory()
    server.execute(
        "CREATE DATABASE shop",
        "CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40), qty INT NOT NULL)",
    )
    harness = SourceHarness(MySqlSourceConnector, source_config(server, "restarted", "shop"))
    try:
        server.execute("INSERT INTO items VALUES (1, 'a', 1)", database="shop")
        first = harness.poll_until(1)
        server.restart()
        server.execute("INSERT INTO items VALUES (2, 'b', 2)", database="shop")
        second = harness.poll_until(1, timeout_s=30)
        server.kill()
        server.restart()
        server.execute("INSERT INTO items VALUES (3, 'c', 3)", database="shop")
        third = harness.poll_until(1, timeout_s=30)
        extra = _nothing_more(harness)
    finally:
        harness.stop()
    assert ids_of(first + second + third) == [("c", 1), ("c", 2), ("c", 3)]
    assert extra == []


def test_purged_position_is_an_error_or_a_new_snapshot_when_needed(mariadb_factory: Any) -> None:
    server = mariadb_factory()
    server.execute(
        "CREATE DATABASE shop",
        "CREATE TABLE shop.items (id INT PRIMARY KEY, name VARCHAR(40), qty INT NOT NULL)",
        "INSERT INTO shop.items VALUES (1, 'a', 1)",
    )
    config = source_config(server, "purged", "shop", **{"binlog.positioning": "file"})
    harness = SourceHarness(MySqlSourceConnector, config)
    harness.poll_until(1)
    harness.stop()
    server.execute("INSERT INTO shop.items VALUES (2, 'b', 2)")
    server.execute("FLUSH BINARY LOGS", "FLUSH BINARY LOGS")
    _purge_all_but_the_newest_binlog(server, before=harness.offsets)
    with pytest.raises(FatalError, match=r"snapshot\.mode=when_needed"):
        harness.restart()
    harness.config["snapshot.mode"] = "when_needed"
    harness.restart()
    try:
        records = harness.poll_until(2)
    finally:
        harness.stop()
    assert ids_of(records) == [("r", 1), ("r", 2)]


def _purge_all_but_the_newest_binlog(server: MariaDBServer, before: Any) -> None:
    """Purge binlogs until the file of the offset stored in ``before`` is gone."""
    server.purge_binlogs_until_gone(next(iter(before.stored.values()))[1]["file"])


def test_refuses_a_server_without_full_row_metadata(mariadb_factory: Any) -> None:
    server = mariadb_factory(options={"binlog-row-metadata": "MINIMAL"})
    with pytest.raises(FatalError) as caught:
        SourceHarness(MySqlSourceConnector, source_config(server, "minimal", "shop"))
    message = str(caught.value)
    assert "binlog_row_metadata is MINIMAL" in message
    assert "SET GLOBAL binlog_row_metadata=FULL" in message


def test_ddl_gives_a_schema_change_record_and_the_new_column(
    mariadb_server: MariaDBServer, database: str
) -> None:
    harness = SourceHarness(MySqlSourceConnector, source_config(mariadb_server, "ddl", database))
    try:
        mariadb_server.execute("INSERT INTO items VALUES (1, 'a', 1)", database=database)
        harness.poll_until(1)
        mariadb_server.execute(
            "ALTER TABLE items ADD COLUMN note VARCHAR(20) NULL",
            "INSERT INTO items VALUES (2, 'b', 2, 'hello')",
            database=database,
        )
        records = harness.poll_until(2)
    finally:
        harness.stop()
    ddl, change = records
    assert ddl.topic == "ddl"
    value = ddl.value.as_dict()
    assert value["ddl"].startswith("ALTER TABLE items ADD COLUMN note")
    assert value["databaseName"] == database
    assert value["tableChanges"] == [{"type": "ALTER", "id": f'"{database}"."items"'}]
    assert change.value.as_dict()["after"] == {"id": 2, "name": "b", "qty": 2, "note": "hello"}


def test_transaction_metadata(mariadb_server: MariaDBServer, database: str) -> None:
    config = source_config(
        mariadb_server,
        "txmeta",
        database,
        **{"provide.transaction.metadata": "true", "snapshot.mode": "no_data"},
    )
    harness = SourceHarness(MySqlSourceConnector, config)
    try:
        mariadb_server.execute(
            "BEGIN",
            "INSERT INTO items VALUES (1, 'a', 1)",
            "INSERT INTO items VALUES (2, 'b', 2)",
            "COMMIT",
            database=database,
        )
        records = harness.poll_until(4)
    finally:
        harness.stop()
    assert [r.topic for r in records] == [
        "txmeta.transaction",
        f"txmeta.{database}.items",
        f"txmeta.{database}.items",
        "txmeta.transaction",
    ]
    begin, first, second, end = (r.value.as_dict() for r in records)
    assert begin["status"] == "BEGIN" and end["status"] == "END"
    assert begin["id"] == end["id"] == first["source"]["gtid"]
    assert end["event_count"] == 2
    assert end["data_collections"] == [{"data_collection": f"{database}.items", "event_count": 2}]
    assert [first["transaction"]["total_order"], second["transaction"]["total_order"]] == [1, 2]


def test_heartbeats_carry_the_current_offset(mariadb_server: MariaDBServer, database: str) -> None:
    config = source_config(mariadb_server, "hb", database, **{"heartbeat.interval.ms": "100"})
    harness = SourceHarness(MySqlSourceConnector, config)
    try:
        mariadb_server.execute("INSERT INTO items VALUES (1, 'a', 1)", database=database)
        change = harness.poll_until(1)
        beats = [r for r in harness.poll_until(1) if r.topic == "__omconnect-heartbeat.hb"]
    finally:
        harness.stop()
    assert beats, "no heartbeat while idle"
    assert beats[0].key.as_dict() == {"serverName": "hb"}
    assert beats[0].source_offset["pos"] > change[0].source_offset["pos"]
    assert beats[0].source_offset["event"] == 0


def test_an_undecodable_compressed_event_stops_the_task(mariadb_factory: Any) -> None:
    server = mariadb_factory()
    server.execute(
        "CREATE DATABASE shop",
        "CREATE TABLE shop.items (id INT PRIMARY KEY, name TEXT, qty INT NOT NULL)",
    )
    harness = SourceHarness(MySqlSourceConnector, source_config(server, "compressed", "shop"))
    try:
        server.execute("INSERT INTO items VALUES (1, 'a', 1)", database="shop")
        first = harness.poll_until(1)
        server.execute("SET GLOBAL log_bin_compress=ON")
        server.execute(f"INSERT INTO items VALUES (2, '{'x' * 2000}', 2)", database="shop")
        with pytest.raises(FatalError, match="log_bin_compress=OFF"):
            harness.poll_until(1)
    finally:
        harness.stop()
    assert ids_of(first) == [("c", 1)]


def test_an_unfinished_snapshot_is_taken_again(
    mariadb_server: MariaDBServer, database: str
) -> None:
    mariadb_server.execute(
        *(f"INSERT INTO items VALUES ({i}, 'n{i}', {i})" for i in range(1, 4)), database=database
    )
    config = source_config(mariadb_server, "redo", database, **{"max.batch.size": "1"})
    harness = SourceHarness(MySqlSourceConnector, config)
    try:
        first = harness.poll_until(1)
        harness.restart()
        again = harness.poll_until(3)
        mariadb_server.execute("INSERT INTO items VALUES (4, 'd', 4)", database=database)
        streamed = harness.poll_until(1)
    finally:
        harness.stop()
    assert first[0].source_offset["snapshot"] is True
    assert ids_of(again) == [("r", 1), ("r", 2), ("r", 3)]
    assert ids_of(streamed) == [("c", 4)]
