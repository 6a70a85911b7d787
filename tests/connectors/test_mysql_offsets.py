"""Pure logic of the MySQL source: offsets, GTID sets, the transaction tracker, the
start decision, preconditions, DDL parsing and batch cutting."""

from __future__ import annotations

import pytest

from omconnect.connect.records import SourceRecord
from omconnect.connectors.mysql.binlog import UndecodableEventError, _unknown
from omconnect.connectors.mysql.config import MySqlSourceConfig, Positioning, SnapshotMode
from omconnect.connectors.mysql.metadata import TableChange, is_ddl, table_changes
from omconnect.connectors.mysql.offsets import (
    BinlogOffset,
    TransactionTracker,
    add_gtid,
    parse_mysql_gtid_set,
)
from omconnect.connectors.mysql.plan import (
    Start,
    decide_start,
    gtid_positioning,
    server_has_gtids,
)
from omconnect.connectors.mysql.preconditions import check_preconditions
from omconnect.connectors.mysql.source import Backoff, split_batch
from omconnect.errors import FatalError

UUID = "3e11fa47-71ca-11e1-9e33-c80aa9429562"
OTHER = "00000000-0000-0000-0000-000000000001"

# --- offsets and GTIDs -----------------------------------------------------------------


def test_offset_round_trips_through_the_stored_map() -> None:
    offset = BinlogOffset(
        "binlog.000003", 1234, "0-1-9", event=2, row=1, ts_sec=99, transaction_gtid="0-1-10"
    )
    assert BinlogOffset.from_offset(offset.as_offset()) == offset
    assert offset.mid_transaction
    assert not BinlogOffset("binlog.000003", 4).mid_transaction


@pytest.mark.parametrize(
    "stored",
    [{"pos": 4}, {"file": "", "pos": 4}, {"file": "b.1", "pos": -1}, {"file": "b.1", "row": "x"}],
)
def test_a_foreign_offset_is_refused(stored: dict[str, object]) -> None:
    with pytest.raises(FatalError):
        BinlogOffset.from_offset(stored)


@pytest.mark.parametrize(
    ("gtids", "gtid", "expected"),
    [
        ("", "0-1-5", "0-1-5"),
        ("0-1-5", "0-1-6", "0-1-6"),
        ("0-1-5,1-2-7", "1-3-8", "0-1-5,1-3-8"),
        ("1-2-7", "0-1-1", "0-1-1,1-2-7"),
        ("", f"{UUID}:1", f"{UUID}:1"),
        (f"{UUID}:1-5", f"{UUID}:6", f"{UUID}:1-6"),
        (f"{UUID}:1-5", f"{UUID}:8", f"{UUID}:1-5:8"),
        (f"{UUID}:1-5:7-9", f"{UUID}:6", f"{UUID}:1-9"),
        (f"{UUID}:1-5", f"{OTHER}:3", f"{OTHER}:3,{UUID}:1-5"),
        (f"{UUID}:1-5", f"{UUID}:3", f"{UUID}:1-5"),
        ("0-1-5", "", "0-1-5"),
    ],
)
def test_add_gtid(gtids: str, gtid: str, expected: str) -> None:
    assert add_gtid(gtids, gtid) == expected


def test_mysql_gtid_sets_parse_with_upper_case_and_newlines() -> None:
    parsed = parse_mysql_gtid_set(f"{UUID.upper()}:1-3:5,\n{OTHER}:7")
    assert parsed == {UUID: [(1, 3), (5, 5)], OTHER: [(7, 7)]}
    with pytest.raises(ValueError, match="not a MySQL GTID"):
        parse_mysql_gtid_set("nonsense:1")
    with pytest.raises(ValueError):
        add_gtid("", "not-a-gtid")


# --- the transaction tracker -------------------------------------------------------------


def _emit(tracker: TransactionTracker, rows: int) -> list[tuple[int, BinlogOffset]]:
    out = [(index, tracker.row_emitted()) for index in tracker.row_event(rows)]
    tracker.row_event_done()
    return out


def test_rows_carry_the_transaction_start_and_what_was_emitted() -> None:
    tracker = TransactionTracker(BinlogOffset("b.1", 100, "0-1-1"))
    tracker.begin(100, "0-1-2", single_statement=False)
    first = _emit(tracker, 2)
    second = _emit(tracker, 1)
    assert [(i, o.pos, o.event, o.row) for i, o in first + second] == [
        (0, 100, 0, 1),
        (1, 100, 0, 2),
        (0, 100, 1, 1),
    ]
    assert first[0][1].gtids == "0-1-1"  # the transaction is not complete yet
    tracker.commit(500)
    assert tracker.offset() == BinlogOffset("b.1", 500, "0-1-2")


def test_resume_skips_emitted_events_and_rows_of_the_first_transaction() -> None:
    tracker = TransactionTracker(BinlogOffset("b.1", 100, "0-1-1", event=1, row=2))
    tracker.rotate("b.1", 100)  # the artificial rotate a reader starts with
    assert tracker.offset().event == 1 and tracker.offset().row == 2
    tracker.begin(100, "0-1-2", single_statement=False)
    assert _emit(tracker, 3) == []
    emitted = _emit(tracker, 4)
    assert [i for i, _ in emitted] == [2, 3]
    assert (emitted[0][1].event, emitted[0][1].row) == (1, 3)
    assert [i for i, _ in _emit(tracker, 2)] == [0, 1]
    tracker.commit(900)
    tracker.begin(900, "0-1-3", single_statement=False)
    assert [i for i, _ in _emit(tracker, 2)] == [0, 1], "later transactions skip nothing"


def test_a_reconnect_mid_transaction_restarts_it_and_skips_what_was_emitted() -> None:
    tracker = TransactionTracker(BinlogOffset("b.1", 4))
    tracker.begin(100, "0-1-2", single_statement=False)
    _emit(tracker, 2)
    tracker.row_event(3)
    tracker.row_emitted()
    resumed = TransactionTracker(tracker.offset())
    resumed.begin(100, "0-1-2", single_statement=False)
    assert _emit(resumed, 2) == []
    assert [i for i, _ in _emit(resumed, 3)] == [1, 2]


def test_mysql_gtid_then_begin_is_one_transaction_and_ddl_is_its_own() -> None:
    tracker = TransactionTracker(BinlogOffset("b.1", 4, f"{UUID}:1"))
    tracker.begin(100, f"{UUID}:2")
    tracker.begin(150)  # the BEGIN query after the GTID event
    assert tracker.statement(170) is False  # e.g. SAVEPOINT inside the transaction
    _emit(tracker, 1)
    assert tracker.offset().pos == 100
    tracker.commit(300)
    tracker.begin(300, f"{UUID}:3")
    assert tracker.statement(350) is True  # ALTER TABLE right after the GTID event
    tracker.commit(400)
    assert tracker.offset() == BinlogOffset("b.1", 400, f"{UUID}:1-3")


def test_statement_outside_a_transaction_completes_at_once() -> None:
    tracker = TransactionTracker(BinlogOffset("b.1", 4))
    assert tracker.statement(50) is True
    tracker.commit(80)
    assert tracker.offset().pos == 80


def test_rotate_moves_the_restart_point_only_between_transactions() -> None:
    tracker = TransactionTracker(BinlogOffset("b.1", 500))
    tracker.rotate("b.2", 4)
    assert (tracker.offset().file, tracker.offset().pos) == ("b.2", 4)
    tracker.begin(256, "0-1-4", single_statement=False)
    tracker.rotate("b.2", 999)
    assert tracker.offset().pos == 256


def test_the_skipped_transaction_is_found_by_its_gtid_at_any_position() -> None:
    tracker = TransactionTracker(BinlogOffset("b.1", 100, "0-1-5", 0, 2, transaction_gtid="0-1-6"))
    assert tracker.offset().transaction_gtid == "0-1-6"
    tracker.rotate("other.7", 4)  # another server's binlog
    tracker.position(330)
    assert tracker.offset() == BinlogOffset("other.7", 330, "0-1-5", 0, 2, transaction_gtid="0-1-6")
    tracker.begin(330, "1-1-9", single_statement=False)  # another domain comes first
    assert [i for i, _ in _emit(tracker, 3)] == [0, 1, 2]
    tracker.commit(400)
    assert tracker.offset().transaction_gtid == "0-1-6", "the skip still waits for 0-1-6"
    tracker.begin(400, "0-1-6", single_statement=False)
    emitted = _emit(tracker, 3)
    assert [i for i, _ in emitted] == [2]
    assert emitted[0][1] == BinlogOffset(
        "other.7", 400, "0-1-5,1-1-9", 0, 3, transaction_gtid="0-1-6"
    )
    tracker.commit(500)
    tracker.begin(500, "0-1-7", single_statement=False)
    assert [i for i, _ in _emit(tracker, 2)] == [0, 1]
    tracker.commit(600)
    assert tracker.offset() == BinlogOffset("other.7", 600, "0-1-7,1-1-9")


def test_position_events_inside_a_transaction_do_not_move_the_restart_point() -> None:
    tracker = TransactionTracker(BinlogOffset("b.1", 4))
    tracker.begin(100, "0-1-2", single_statement=False)
    tracker.position(150)
    assert tracker.offset().pos == 100


_MID = BinlogOffset("b.1", 100, "0-1-5", 1, 0, transaction_gtid="0-1-6")


@pytest.mark.parametrize(
    ("positioning", "offset", "server_gtids", "expected"),
    [
        (Positioning.AUTO, _MID, True, True),
        (Positioning.GTID, _MID, True, True),
        (Positioning.FILE, _MID, True, False),
        (Positioning.AUTO, _MID, False, False),
        (Positioning.AUTO, BinlogOffset("b.1", 100), True, False),
        (Positioning.GTID, BinlogOffset("b.1", 100), True, False),
        (Positioning.AUTO, BinlogOffset("b.1", 100, "0-1-5", 1, 0), True, False),
        (Positioning.AUTO, BinlogOffset("b.1", 100, f"{UUID}:1-5"), True, True),
    ],
)
def test_gtid_positioning(
    positioning: Positioning, offset: BinlogOffset, server_gtids: bool, expected: bool
) -> None:
    assert gtid_positioning(positioning, offset, server_gtids)[0] is expected


def test_gtid_positioning_on_a_server_without_gtids_names_the_setting() -> None:
    with pytest.raises(FatalError, match="gtid_mode=ON"):
        gtid_positioning(Positioning.GTID, _MID, server_gtids=False)


def test_server_has_gtids() -> None:
    assert server_has_gtids({"gtid_binlog_pos": "0-1-5"}, mariadb=True)
    assert not server_has_gtids({"gtid_binlog_pos": ""}, mariadb=True)
    assert server_has_gtids({"gtid_mode": "ON"}, mariadb=False)
    assert not server_has_gtids({"gtid_mode": "OFF_PERMISSIVE"}, mariadb=False)


def test_a_gtid_resume_does_not_need_the_stored_file() -> None:
    plan = decide_start(SnapshotMode.INITIAL, _MID, ["b.2"], by_gtid=True)
    assert plan.start is Start.STORED


# --- start decision --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "stored", "expected"),
    [
        (SnapshotMode.INITIAL, None, Start.SNAPSHOT),
        (SnapshotMode.WHEN_NEEDED, None, Start.SNAPSHOT),
        (SnapshotMode.NO_DATA, None, Start.CURRENT),
        (SnapshotMode.NEVER, None, Start.OLDEST),
        (SnapshotMode.INITIAL, BinlogOffset("b.2", 4, snapshot=True), Start.SNAPSHOT),
        (SnapshotMode.NEVER, BinlogOffset("b.2", 4, snapshot=True), Start.STORED),
        (SnapshotMode.INITIAL, BinlogOffset("b.2", 4), Start.STORED),
        (SnapshotMode.WHEN_NEEDED, BinlogOffset("b.1", 4), Start.SNAPSHOT),
    ],
)
def test_decide_start(mode: SnapshotMode, stored: BinlogOffset | None, expected: Start) -> None:
    assert decide_start(mode, stored, ["b.2", "b.3"]).start is expected


@pytest.mark.parametrize("mode", [SnapshotMode.INITIAL, SnapshotMode.NO_DATA, SnapshotMode.NEVER])
def test_a_purged_position_names_the_fix(mode: SnapshotMode) -> None:
    with pytest.raises(FatalError, match=r"b\.1:4 is no longer.*snapshot.mode=when_needed"):
        decide_start(mode, BinlogOffset("b.1", 4), ["b.2"])


def test_config_accepts_the_old_snapshot_mode_name_and_checks_backoff() -> None:
    base = {"database.hostname": "h", "database.user": "u", "database.server.id": "5"}
    config = MySqlSourceConfig.model_validate(
        {**base, "topic.prefix": "p", "snapshot.mode": "schema_only"}
    )
    assert config.snapshot_mode is SnapshotMode.NO_DATA
    with pytest.raises(ValueError, match="backoff"):
        MySqlSourceConfig.model_validate(
            {**base, "topic.prefix": "p", "connect.backoff.max.delay.ms": "10"}
        )


# --- preconditions ---------------------------------------------------------------------

GOOD = {
    "version": "10.11.6-MariaDB-log",
    "log_bin": "ON",
    "binlog_format": "ROW",
    "binlog_row_image": "FULL",
    "binlog_row_metadata": "FULL",
    "server_id": "1",
}
GRANTS = ["GRANT SELECT, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO `cdc`@`%`"]


def test_a_good_server_passes() -> None:
    assert check_preconditions(GOOD, GRANTS) == []
    assert check_preconditions(GOOD, ["GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost`"]) == []


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"log_bin": "OFF"}, "log_bin is OFF"),
        ({"binlog_format": "MIXED"}, "SET GLOBAL binlog_format=ROW"),
        ({"binlog_row_image": "MINIMAL"}, "SET GLOBAL binlog_row_image=FULL"),
        ({"binlog_row_metadata": "MINIMAL"}, "SET GLOBAL binlog_row_metadata=FULL"),
        ({"log_bin_compress": "ON"}, "SET GLOBAL log_bin_compress=OFF"),
        ({"binlog_transaction_compression": "ON"}, "binlog_transaction_compression=OFF"),
    ],
)
def test_each_bad_variable_is_named_with_its_fix(change: dict[str, str], expected: str) -> None:
    problems = check_preconditions({**GOOD, **change}, GRANTS)
    assert len(problems) == 1 and expected in problems[0]


def test_an_old_server_without_row_metadata_is_named() -> None:
    variables = {k: v for k, v in GOOD.items() if k != "binlog_row_metadata"}
    (problem,) = check_preconditions(variables, GRANTS)
    assert "binlog_row_metadata does not exist" in problem


def test_missing_privileges_are_named() -> None:
    mysql = {**GOOD, "version": "8.0.36"}
    grants = ["GRANT USAGE ON *.* TO `cdc`@`%`"]
    problems = "\n".join(check_preconditions(mysql, grants))
    for privilege in ("REPLICATION SLAVE", "REPLICATION CLIENT", "SELECT", "RELOAD"):
        assert privilege in problems
    assert "RELOAD" not in "\n".join(check_preconditions(mysql, grants, snapshot=False))
    ok = [
        "GRANT RELOAD, REPLICATION SLAVE, REPLICATION CLIENT ON *.* TO `cdc`@`%`",
        "GRANT SELECT (`a`, `b`) ON `shop`.`items` TO `cdc`@`%`",
    ]
    assert check_preconditions(mysql, ok) == []


def test_the_replica_id_must_differ_from_the_servers() -> None:
    (problem,) = check_preconditions(GOOD, GRANTS, replica_server_id=1)
    assert "database.server.id 1" in problem


# --- undecodable events ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("event_type", "fix"),
    [
        (0x28, "binlog_transaction_compression=OFF"),
        (0xA5, "log_bin_compress=OFF"),
        (0xA9, "log_bin_compress=OFF"),
        (0x77, "cannot decode"),
    ],
)
def test_undecodable_events_stop_the_task(event_type: int, fix: str) -> None:
    with pytest.raises(UndecodableEventError, match=fix):
        _unknown(event_type, 120)


def test_harmless_unknown_events_are_ignored_and_anonymous_gtid_begins() -> None:
    assert _unknown(0x1C, 10) is None
    began = _unknown(0x22, 10)
    assert began is not None and began.pos == 10  # type: ignore[union-attr]


# --- DDL parsing -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sql", "expected"),
    [
        ("ALTER TABLE items ADD COLUMN x INT", [TableChange("ALTER", "db", "items")]),
        ("alter table `s`.`it``s` add x int", [TableChange("ALTER", "s", "it`s")]),
        (
            "CREATE TABLE IF NOT EXISTS other.t (id INT)",
            [TableChange("CREATE", "other", "t")],
        ),
        (
            "DROP TABLE IF EXISTS a, `b`.c /* generated by server */",
            [TableChange("DROP", "db", "a"), TableChange("DROP", "b", "c")],
        ),
        (
            "RENAME TABLE a TO b",
            [TableChange("DROP", "db", "a"), TableChange("CREATE", "db", "b")],
        ),
        ("TRUNCATE TABLE t", [TableChange("ALTER", "db", "t")]),
        ("CREATE INDEX i ON t (x)", [TableChange("ALTER", "db", "t")]),
        ("CREATE DATABASE x", []),
    ],
)
def test_table_changes(sql: str, expected: list[TableChange]) -> None:
    assert is_ddl(sql)
    assert table_changes(sql, "db") == expected


def test_non_ddl_statements() -> None:
    assert not is_ddl("INSERT INTO t VALUES (1)")
    assert not is_ddl("SAVEPOINT a")


# --- batches and backoff -----------------------------------------------------------------


def _record(offset: int) -> SourceRecord:
    return SourceRecord("t", None, None, None, None, None, source_offset={"row": offset})


def test_a_batch_is_never_cut_between_records_of_one_row() -> None:
    records = [_record(1), _record(2), _record(2), _record(3)]
    now, later = split_batch(records, 2)
    assert [r.source_offset["row"] for r in now] == [1]
    assert [r.source_offset["row"] for r in later] == [2, 2, 3]
    now, later = split_batch(records[1:3], 1)
    assert len(now) == 2 and later == []
    assert split_batch(records, 10) == (records, [])


def test_backoff_doubles_up_to_the_maximum_and_resets() -> None:
    backoff = Backoff(0.1, 0.5)
    assert [backoff.next_delay() for _ in range(5)] == [0.1, 0.2, 0.4, 0.5, 0.5]
    backoff.reset()
    assert backoff.next_delay() == 0.1
