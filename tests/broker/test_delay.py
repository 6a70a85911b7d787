"""Delayed delivery: the pure parts, then the relay over a store cut at every crash point."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from prefix_store import PrefixStore

from omconnect.broker.delay import (
    DelayedDelivery,
    DeliveryOp,
    DueHeap,
    ScheduleRecord,
    group_by_target,
)
from omconnect.broker.metadata import SCHEDULE_QUEUE_ID, QueueMeta
from omconnect.broker.offsets import OffsetStore
from omconnect.errors import CorruptDataError

# -- pure ------------------------------------------------------------------------------


def test_schedule_record_round_trip() -> None:
    record = ScheduleRecord(70, 3, 1_700_000_000_000, b"\x00payload")
    assert ScheduleRecord.decode(record.encode()) == record


def test_delivery_op_round_trip() -> None:
    op = DeliveryOp([4, 1, 9], [(64, 0, 10, 2), (65, 2, 0, 1)])
    assert DeliveryOp.decode(op.encode()) == op
    assert DeliveryOp.decode(DeliveryOp([], []).encode()) == DeliveryOp([], [])


@pytest.mark.parametrize("payload", [b"", b"\x94\x01", b"\x92\x01\x02", b"\xc1"])
def test_decoders_reject_garbage(payload: bytes) -> None:
    with pytest.raises(CorruptDataError):
        ScheduleRecord.decode(payload)
    with pytest.raises(CorruptDataError):
        DeliveryOp.decode(payload)


def test_due_heap_orders_by_time_then_offset() -> None:
    heap = DueHeap()
    for at, offset in [(300, 0), (100, 1), (200, 2), (100, 3), (500, 4)]:
        heap.add(at, offset)
    assert heap.next_due() == 100
    assert heap.pop_due(99, 10) == []
    assert heap.pop_due(200, 10) == [1, 3, 2]
    assert heap.next_due() == 300
    assert len(heap) == 2


def test_due_heap_respects_limit() -> None:
    heap = DueHeap()
    for offset in range(10):
        heap.add(0, offset)
    assert heap.pop_due(0, 4) == [0, 1, 2, 3]
    assert heap.pop_due(0, 100) == [4, 5, 6, 7, 8, 9]
    assert heap.next_due() is None
    assert heap.pop_due(10**12, 1) == []


def test_group_by_target_keeps_orders() -> None:
    items = [(1, 0, b"a"), (2, 0, b"b"), (1, 0, b"c"), (1, 1, b"d"), (2, 0, b"e")]
    assert group_by_target(items) == [(1, 0, [b"a", b"c"]), (2, 0, [b"b", b"e"]), (1, 1, [b"d"])]
    assert group_by_target([]) == []


# -- the relay over a store cut at any record ------------------------------------------

QUEUES = {64: QueueMeta("ns", "a", 64, 2), 65: QueueMeta("ns", "b", 65, 1)}


def make_delivery(store: PrefixStore, data_dir: Path) -> DelayedDelivery:
    return DelayedDelivery(store, OffsetStore(data_dir), QUEUES.get, threading.Lock())


def test_not_delivered_before_due_then_delivered_in_time_order(tmp_path: Path) -> None:
    store = PrefixStore()
    delivery = make_delivery(store, tmp_path)
    delivery.schedule(64, 0, [b"late", b"early"], [2000, 1000])
    delivery.schedule(64, 0, [b"mid"], [1500])
    assert delivery.next_due() == 1000
    assert delivery.deliver_due(999) == 0
    assert store.messages(64, 0) == []
    assert delivery.deliver_due(1500) == 2
    assert store.messages(64, 0) == [b"early", b"mid"]
    assert delivery.deliver_due(5000) == 1
    assert store.messages(64, 0) == [b"early", b"mid", b"late"]
    assert delivery.pending() == 0 and delivery.next_due() is None


def test_messages_of_deleted_queues_are_dropped(tmp_path: Path) -> None:
    store = PrefixStore()
    delivery = make_delivery(store, tmp_path)
    delivery.schedule(99, 0, [b"orphan"], [10])  # 99: no such queue any more
    delivery.schedule(65, 0, [b"ok"], [10])
    assert delivery.deliver_due(10) == 1
    assert store.messages(99, 0) == [] and store.messages(65, 0) == [b"ok"]
    assert delivery.pending() == 0


def test_restart_resumes_pending_and_does_not_redeliver(tmp_path: Path) -> None:
    store = PrefixStore()
    delivery = make_delivery(store, tmp_path)
    delivery.schedule(64, 1, [b"a", b"b", b"c"], [10, 20, 30])
    delivery.deliver_due(20)
    delivery.save_progress()
    reopened = make_delivery(store, tmp_path)  # the offset store was never persisted
    assert reopened.pending() == 1
    reopened.deliver_due(100)
    assert store.messages(64, 1) == [b"a", b"b", b"c"]


def test_saved_progress_skips_settled_history(tmp_path: Path) -> None:
    store = PrefixStore()
    offsets = OffsetStore(tmp_path)
    delivery = DelayedDelivery(store, offsets, QUEUES.get, threading.Lock())
    delivery.schedule(64, 0, [b"x"] * 5, [10, 10, 10, 10, 99])
    delivery.deliver_due(10)
    delivery.save_progress()
    offsets.persist()
    assert OffsetStore(tmp_path).committed("%sys", "%delay", "%schedule") == {0: 4, 1: 1}
    reopened = make_delivery(store, tmp_path)
    assert reopened.pending() == 1
    reopened.deliver_due(99)
    assert store.messages(64, 0) == [b"x"] * 5


def test_every_crash_point_delivers_each_surviving_message_exactly_once(tmp_path: Path) -> None:
    """Cut the commit log after every record: recovery + delivery must put each
    message whose schedule record survived into its queue exactly once."""
    store = PrefixStore()
    delivery = make_delivery(store, tmp_path / "live")
    delivery.schedule(64, 0, [b"a0", b"a1"], [10, 30])
    delivery.schedule(65, 0, [b"b0"], [10])
    delivery.schedule(64, 1, [b"c0", b"c1"], [20, 20])
    delivery.deliver_due(10)
    delivery.schedule(65, 0, [b"b1"], [40])
    delivery.deliver_due(20)
    delivery.deliver_due(40)
    expected = {(64, 0): [b"a0", b"a1"], (65, 0): [b"b0", b"b1"], (64, 1): [b"c0", b"c1"]}
    assert {key: store.messages(*key) for key in expected} == expected
    for n in range(len(store.records) + 1):
        crashed = store.cut(n)
        survived = {
            ScheduleRecord.decode(p).encoded
            for q, _, p in crashed.records
            if q == SCHEDULE_QUEUE_ID
        }
        recovered = make_delivery(crashed, tmp_path / f"cut{n}")
        recovered.deliver_due(10**6)
        for key, messages in expected.items():
            got = crashed.messages(*key)
            assert got == [m for m in messages if m in survived], (n, key)
