"""Transactions: the pure parts, then half messages over a store cut at every crash point."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from prefix_store import PrefixStore

from omconnect.broker.metadata import TRANS_HALF_QUEUE_ID, TRANS_OP_QUEUE_ID, QueueMeta
from omconnect.broker.offsets import OffsetStore
from omconnect.broker.transactions import (
    HalfRecord,
    PendingTransactions,
    TransactionLog,
    TransactionOp,
)
from omconnect.errors import CorruptDataError

INTERVAL = 1000


def half(
    txid: str, group: str = "pg", ns: str = "ns", prepared_at: int = 0, payload: bytes = b"m"
) -> HalfRecord:
    return HalfRecord(ns, group, txid, 64, "a", 0, prepared_at, payload)


# -- pure ------------------------------------------------------------------------------


def test_half_record_round_trip() -> None:
    record = HalfRecord("ns", "pg", "tx-\u00e9", 70, "orders", 3, 1_700_000_000_000, b"\x00m")
    assert HalfRecord.decode(record.encode()) == record


def test_transaction_op_round_trip() -> None:
    for op in [
        TransactionOp(True, "ns", "t1", [3, 4], [(64, 0, 10, 2)]),
        TransactionOp(False, "ns", "t2", [5], []),
    ]:
        assert TransactionOp.decode(op.encode()) == op


@pytest.mark.parametrize("payload", [b"", b"\x95\x01", b"\x92\x01\x02", b"\xc1"])
def test_decoders_reject_garbage(payload: bytes) -> None:
    with pytest.raises(CorruptDataError):
        HalfRecord.decode(payload)
    with pytest.raises(CorruptDataError):
        TransactionOp.decode(payload)


def test_pending_take_returns_prepare_order_once() -> None:
    pending = PendingTransactions()
    pending.add(0, half("t1", payload=b"a"), INTERVAL)
    pending.add(1, half("t2"), INTERVAL)
    pending.add(2, half("t1", payload=b"b"), INTERVAL)
    assert len(pending) == 3
    taken = pending.take("ns", "t1")
    assert [e.offset for e in taken] == [0, 2]
    assert all(e.record.encoded == b"" for e in taken)  # payloads stay on disk
    assert pending.take("ns", "t1") == []
    assert pending.take("other", "t2") == []
    assert len(pending) == 1


def test_checks_wait_an_interval_then_repeat_each_interval() -> None:
    pending = PendingTransactions()
    pending.add(0, half("t1", prepared_at=100), INTERVAL)
    assert pending.due_checks("ns", "pg", 1099, INTERVAL) == []
    assert [e.offset for e in pending.due_checks("ns", "pg", 1100, INTERVAL)] == [0]
    assert pending.due_checks("ns", "pg", 1100, INTERVAL) == []  # just offered
    assert pending.due_checks("ns", "pg", 2099, INTERVAL) == []
    assert [e.offset for e in pending.due_checks("ns", "pg", 2100, INTERVAL)] == [0]


def test_checks_are_per_namespace_and_group_in_offset_order() -> None:
    pending = PendingTransactions()
    pending.add(5, half("t1"), INTERVAL)
    pending.add(2, half("t2"), INTERVAL)
    pending.add(3, half("t3", group="other"), INTERVAL)
    pending.add(4, half("t4", ns="ns2"), INTERVAL)
    assert [e.offset for e in pending.due_checks("ns", "pg", 10**6, INTERVAL)] == [2, 5]
    assert [e.offset for e in pending.due_checks("ns", "other", 10**6, INTERVAL)] == [3]
    assert [e.offset for e in pending.due_checks("ns2", "pg", 10**6, INTERVAL)] == [4]
    assert sorted(pending.transactions_of("ns")) == ["t1", "t2", "t3"]


# -- the log over a store cut at any record --------------------------------------------

QUEUES = {64: QueueMeta("ns", "a", 64, 2), 65: QueueMeta("ns", "b", 65, 1)}


def make_log(store: PrefixStore, data_dir: Path) -> TransactionLog:
    return TransactionLog(store, OffsetStore(data_dir), QUEUES.get, threading.Lock(), INTERVAL)


def prepare(
    log: TransactionLog,
    txid: str,
    queue_id: int,
    partition: int,
    payloads: list[bytes],
    now: int = 0,
) -> None:
    log.prepare("ns", "pg", txid, QUEUES[queue_id], partition, payloads, now)


def test_commit_appends_in_order_and_rollback_drops(tmp_path: Path) -> None:
    store = PrefixStore()
    log = make_log(store, tmp_path)
    prepare(log, "t1", 64, 0, [b"a", b"b"])
    prepare(log, "t2", 64, 0, [b"x"])
    prepare(log, "t1", 65, 0, [b"c"])
    assert store.messages(64, 0) == []  # invisible until committed
    assert log.end("ns", "t1", commit=True) is not None
    assert store.messages(64, 0) == [b"a", b"b"]
    assert store.messages(65, 0) == [b"c"]
    assert log.end("ns", "t2", commit=False) is not None
    assert log.end("ns", "t2", commit=True) is None  # already ended: no-op
    assert log.end("ns", "nope", commit=True) is None
    assert store.messages(64, 0) == [b"a", b"b"]
    assert log.pending() == 0


def test_check_back_offers_undecided_after_interval(tmp_path: Path) -> None:
    store = PrefixStore()
    log = make_log(store, tmp_path)
    prepare(log, "t1", 64, 1, [b"a"], now=500)
    prepare(log, "t2", 64, 1, [b"b"], now=500)
    log.end("ns", "t2", commit=True)
    assert log.due_checks("ns", "pg", 1499) == []
    checks = log.due_checks("ns", "pg", 1500)
    assert [(c.transaction_id, c.queue, c.partition, c.encoded, c.prepared_at) for c in checks] == [
        ("t1", "a", 1, b"a", 500)
    ]
    assert log.due_checks("ns", "pg", 1500) == []
    assert len(log.due_checks("ns", "pg", 2500)) == 1
    assert log.due_checks("ns", "other-group", 10**6) == []


def test_commit_to_a_deleted_queue_drops_its_messages(tmp_path: Path) -> None:
    store = PrefixStore()
    lookup = {64: QUEUES[64]}
    log = TransactionLog(store, OffsetStore(tmp_path), lookup.get, threading.Lock(), INTERVAL)
    log.prepare("ns", "pg", "t", QUEUES[65], 0, [b"gone"], 0)
    log.prepare("ns", "pg", "t", QUEUES[64], 0, [b"kept"], 0)
    log.end("ns", "t", commit=True)
    assert store.messages(65, 0) == [] and store.messages(64, 0) == [b"kept"]


def test_roll_back_namespace(tmp_path: Path) -> None:
    store = PrefixStore()
    log = make_log(store, tmp_path)
    prepare(log, "t1", 64, 0, [b"a"])
    log.prepare("other", "pg", "t2", QUEUES[64], 0, [b"b"], 0)
    log.roll_back_namespace("ns")
    assert log.pending() == 1
    assert log.due_checks("ns", "pg", 10**6) == []


def test_restart_with_saved_progress(tmp_path: Path) -> None:
    store = PrefixStore()
    offsets = OffsetStore(tmp_path)
    log = TransactionLog(store, offsets, QUEUES.get, threading.Lock(), INTERVAL)
    prepare(log, "t1", 64, 0, [b"a"])
    prepare(log, "t2", 64, 0, [b"b"])
    prepare(log, "t3", 64, 0, [b"c"])
    log.end("ns", "t1", commit=True)
    log.end("ns", "t3", commit=False)
    log.save_progress()
    offsets.persist()
    assert OffsetStore(tmp_path).committed("%sys", "%transactions", "%half") == {0: 1, 1: 1}
    reopened = make_log(store, tmp_path)
    assert reopened.pending() == 1
    assert [c.transaction_id for c in reopened.due_checks("ns", "pg", 10**6)] == ["t2"]
    reopened.end("ns", "t2", commit=True)
    assert store.messages(64, 0) == [b"a", b"b"]


def test_every_crash_point_keeps_undecided_and_never_redelivers(tmp_path: Path) -> None:
    """Cut the commit log after every record. After recovery: a transaction whose
    decision survived is never offered again and, if committed, its messages are in
    their queues exactly once; one whose decision was lost is offered again and its
    messages are not visible; half messages that were lost are simply gone."""
    store = PrefixStore()
    log = make_log(store, tmp_path / "live")
    prepare(log, "c1", 64, 0, [b"c1-a", b"c1-b"])
    prepare(log, "c1", 65, 0, [b"c1-c"])
    prepare(log, "r1", 64, 0, [b"r1-a"])
    prepare(log, "c2", 64, 1, [b"c2-a", b"c2-b"])
    prepare(log, "open", 64, 0, [b"open-a"])
    log.end("ns", "c1", commit=True)
    log.end("ns", "r1", commit=False)
    log.end("ns", "c2", commit=True)
    messages = {
        "c1": [(64, 0, b"c1-a"), (64, 0, b"c1-b"), (65, 0, b"c1-c")],
        "r1": [(64, 0, b"r1-a")],
        "c2": [(64, 1, b"c2-a"), (64, 1, b"c2-b")],
        "open": [(64, 0, b"open-a")],
    }
    for n in range(len(store.records) + 1):
        crashed = store.cut(n)
        halves = [HalfRecord.decode(p) for q, _, p in crashed.records if q == TRANS_HALF_QUEUE_ID]
        decided = {
            TransactionOp.decode(p).transaction_id: TransactionOp.decode(p).commit
            for q, _, p in crashed.records
            if q == TRANS_OP_QUEUE_ID
        }
        recovered = make_log(crashed, tmp_path / f"cut{n}")
        offered = {c.transaction_id for c in recovered.due_checks("ns", "pg", 10**9)}
        assert offered == {h.transaction_id for h in halves} - set(decided), n
        visible = {key: crashed.messages(*key) for key in [(64, 0), (64, 1), (65, 0)]}
        for txid, expected in messages.items():
            for queue_id, partition, payload in expected:
                count = visible[(queue_id, partition)].count(payload)
                assert count == (1 if decided.get(txid) else 0), (n, txid, payload)
