"""Delayed delivery: messages stored now, visible in their queue at a given time.

`DelayedDelivery.schedule` appends each message, with its target and deliver-at
time, to the internal schedule queue (durable like any append) and remembers
(deliver_at, schedule offset) in a heap. When entries fall due, `deliver_due` moves
them to their queues with `relay_append`, which writes an *op* record naming the
schedule offsets it settles before appending the messages, all under the broker's
append lock. On restart, `recover` replays ops from the saved op progress and the
schedule queue from the saved schedule progress (see `ProgressTracker`): entries
without an op are pending again, and an op whose appends were lost in the crash
(its partition ends short of the offset + count the op recorded) is completed. A message is
therefore delivered exactly once, provided the commit log recovers a prefix of what
was written (a process crash; an OS crash with async flush may lose more).

Pure parts: `DueHeap`, `ScheduleRecord`, `DeliveryOp`, `group_by_target`.
"""

from __future__ import annotations

import heapq
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Protocol

import msgpack

from omconnect.broker.api import StoredMessage
from omconnect.broker.metadata import SCHEDULE_OP_QUEUE_ID, SCHEDULE_QUEUE_ID, QueueMeta
from omconnect.broker.offsets import OffsetStore, ProgressTracker, SavedProgress
from omconnect.errors import CorruptDataError

log = logging.getLogger(__name__)

# (queue id, partition, offset the first message should get, message count)
Target = tuple[int, int, int, int]
PROGRESS_KEY = ("%sys", "%delay", "%schedule")  # in the offset store: partition 0 schedule, 1 op
DELIVERY_BATCH = 256


class RelayStore(Protocol):
    """The part of `MessageStore` the relays use."""

    def append(self, queue_id: int, partition: int, payloads: Sequence[bytes]) -> _Appended: ...
    def read(
        self, queue_id: int, partition: int, offset: int, max_messages: int, max_bytes: int
    ) -> list[StoredMessage]: ...
    def offset_range(self, queue_id: int, partition: int) -> tuple[int, int]: ...


class _Appended(Protocol):
    @property
    def first_offset(self) -> int: ...
    @property
    def end_position(self) -> int: ...


# -- pure ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ScheduleRecord:
    """A delayed message as stored in the schedule queue."""

    queue_id: int
    partition: int
    deliver_at: int
    encoded: bytes

    def encode(self) -> bytes:
        return msgpack.packb([self.queue_id, self.partition, self.deliver_at, self.encoded])

    @classmethod
    def decode(cls, payload: bytes) -> ScheduleRecord:
        try:
            queue_id, partition, deliver_at, encoded = msgpack.unpackb(payload)
            return cls(int(queue_id), int(partition), int(deliver_at), bytes(encoded))
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise CorruptDataError(f"schedule record does not parse: {exc}") from exc


@dataclass(frozen=True, slots=True)
class DeliveryOp:
    """The op record of one delivery: the schedule offsets it settles and the
    partitions it appends to, each with the offset its first message should get."""

    settled: list[int]
    targets: list[Target]

    def encode(self) -> bytes:
        return msgpack.packb([self.settled, [list(t) for t in self.targets]])

    @classmethod
    def decode(cls, payload: bytes) -> DeliveryOp:
        try:
            settled, targets = msgpack.unpackb(payload)
            return cls(
                [int(s) for s in settled],
                [(int(q), int(p), int(o), int(n)) for q, p, o, n in targets],
            )
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise CorruptDataError(f"delivery op does not parse: {exc}") from exc


class DueHeap:
    """Pending deliveries ordered by (deliver_at, schedule offset)."""

    def __init__(self) -> None:
        self._heap: list[tuple[int, int]] = []

    def add(self, deliver_at: int, schedule_offset: int) -> None:
        heapq.heappush(self._heap, (deliver_at, schedule_offset))

    def pop_due(self, now: int, limit: int) -> list[int]:
        """Remove and return up to ``limit`` schedule offsets with deliver_at <= now,
        earliest first."""
        due: list[int] = []
        heap = self._heap
        while heap and heap[0][0] <= now and len(due) < limit:
            due.append(heapq.heappop(heap)[1])
        return due

    def next_due(self) -> int | None:
        """The earliest deliver_at still pending, or None."""
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)


def group_by_target(items: Sequence[tuple[int, int, bytes]]) -> list[tuple[int, int, list[bytes]]]:
    """Group (queue id, partition, payload) by partition, keeping the order of first
    appearance and the order within each partition."""
    groups: dict[tuple[int, int], list[bytes]] = {}
    for queue_id, partition, payload in items:
        groups.setdefault((queue_id, partition), []).append(payload)
    return [(q, p, payloads) for (q, p), payloads in groups.items()]


# -- the exactly-once move, shared with transactions -----------------------------------


def relay_append(
    store: RelayStore,
    append_lock: threading.Lock,
    op_queue_id: int,
    make_op: Callable[[list[Target]], bytes],
    batches: Sequence[tuple[int, int, list[bytes]]],
) -> tuple[int, int]:
    """Write the op record ``make_op(targets)``, then append each batch to its
    partition, atomically with respect to other appends under ``append_lock``.
    Return (op offset, end position of the last append) for `wait_durable`."""
    with append_lock:
        targets = [(q, p, store.offset_range(q, p)[1], len(payloads)) for q, p, payloads in batches]
        op = store.append(op_queue_id, 0, [make_op(targets)])
        end = op.end_position
        for (queue_id, partition, payloads), target in zip(batches, targets, strict=True):
            result = store.append(queue_id, partition, payloads)
            if result.first_offset != target[2]:
                log.error(
                    "relay append to queue %d/%d got offset %d, expected %d",
                    queue_id,
                    partition,
                    result.first_offset,
                    target[2],
                )
            end = result.end_position
        return op.first_offset, end


def redo_lost(
    store: RelayStore,
    append_lock: threading.Lock,
    targets: Sequence[Target],
    load_items: Callable[[], list[tuple[int, int, bytes]]],
) -> int:
    """After a crash, append what an op's appends lost: a partition that ends short of
    the op's first offset + count gets the missing tail of its batch again.
    ``load_items`` re-reads the op's (queue id, partition, payload) in their original
    order (called only if something is missing). Return how many were appended."""
    short: list[tuple[int, int, int]] = []
    for queue_id, partition, first, count in targets:
        present = max(0, store.offset_range(queue_id, partition)[1] - first)
        if present < count:
            short.append((queue_id, partition, present))
    if not short:
        return 0
    batches = {(q, p): payloads for q, p, payloads in group_by_target(load_items())}
    redone = 0
    with append_lock:
        for queue_id, partition, present in short:
            missing = batches.get((queue_id, partition), [])[present:]
            if missing:  # none: the queue was deleted since
                log.warning(
                    "a crash lost %d relayed messages to queue %d/%d: appending them again",
                    len(missing),
                    queue_id,
                    partition,
                )
                store.append(queue_id, partition, missing)
                redone += len(missing)
    return redone


def read_at(store: RelayStore, queue_id: int, offset: int) -> bytes | None:
    """The payload at exactly ``offset`` of an internal queue, or None if it is gone."""
    found = store.read(queue_id, 0, offset, 1, 1)
    return found[0].encoded if found and found[0].offset == offset else None


def scan(store: RelayStore, queue_id: int, start: int) -> list[StoredMessage]:
    """Every record of an internal queue from ``start`` on."""
    out: list[StoredMessage] = []
    offset = max(start, store.offset_range(queue_id, 0)[0])
    while True:
        batch = store.read(queue_id, 0, offset, 1024, 8 << 20)
        if not batch:
            return out
        out.extend(batch)
        offset = batch[-1].offset + 1


# -- the shell -------------------------------------------------------------------------


class DelayedDelivery:
    """The schedule queue, its heap of pending deliveries and their delivery.
    Thread-safe. ``lookup`` maps a queue id to its live queue (None once deleted:
    its messages are dropped when due)."""

    def __init__(
        self,
        store: RelayStore,
        offsets: OffsetStore,
        lookup: Callable[[int], QueueMeta | None],
        append_lock: threading.Lock,
        on_delivered: Callable[[QueueMeta, list[bytes]], None] = lambda meta, payloads: None,
    ) -> None:
        self._store = store
        self._lookup = lookup
        self._append_lock = append_lock
        self._on_delivered = on_delivered
        self._lock = threading.Lock()
        self.changed = threading.Condition(self._lock)  # notified when the heap grows
        self._heap = DueHeap()
        self._tracker = ProgressTracker()
        self._progress = SavedProgress(offsets, PROGRESS_KEY)
        self._recover()

    def _recover(self) -> None:
        schedule_start, op_start = self._progress.load()
        self._tracker = ProgressTracker(schedule_start, op_start)
        settled: set[int] = set()
        for stored in scan(self._store, SCHEDULE_OP_QUEUE_ID, op_start):
            op = DeliveryOp.decode(stored.encoded)
            self._tracker.settle(stored.offset, op.settled)
            settled.update(op.settled)
            redo_lost(self._store, self._append_lock, op.targets, partial(self._items, op.settled))
        pending = 0
        for stored in scan(self._store, SCHEDULE_QUEUE_ID, schedule_start):
            if stored.offset not in settled:
                record = ScheduleRecord.decode(stored.encoded)
                self._tracker.add(stored.offset)
                self._heap.add(record.deliver_at, stored.offset)
                pending += 1
        self._tracker.advance_source(self._store.offset_range(SCHEDULE_QUEUE_ID, 0)[1])
        log.info("delayed delivery recovered: %d pending", pending)

    def _items(self, schedule_offsets: list[int]) -> list[tuple[int, int, bytes]]:
        """(queue id, partition, message) of schedule entries whose queue still exists."""
        items: list[tuple[int, int, bytes]] = []
        for offset in schedule_offsets:
            payload = read_at(self._store, SCHEDULE_QUEUE_ID, offset)
            if payload is None:
                log.warning("delayed message at schedule offset %d is gone", offset)
                continue
            record = ScheduleRecord.decode(payload)
            if self._lookup(record.queue_id) is not None:
                items.append((record.queue_id, record.partition, record.encoded))
        return items

    def schedule(
        self, queue_id: int, partition: int, payloads: Sequence[bytes], deliver_at: Sequence[int]
    ) -> int:
        """Store messages for later delivery; return the end position to wait on."""
        records = [
            ScheduleRecord(queue_id, partition, at, payload).encode()
            for payload, at in zip(payloads, deliver_at, strict=True)
        ]
        with self._lock:
            result = self._store.append(SCHEDULE_QUEUE_ID, 0, records)
            for i, at in enumerate(deliver_at):
                self._tracker.add(result.first_offset + i)
                self._heap.add(at, result.first_offset + i)
            self.changed.notify_all()
            return result.end_position

    def deliver_due(self, now: int) -> int:
        """Move every message due at ``now`` to its queue; return how many moved
        (messages of deleted queues are dropped and not counted)."""
        moved = 0
        with self._lock:
            while True:
                due = self._heap.pop_due(now, DELIVERY_BATCH)
                if not due:
                    return moved
                moved += self._deliver(due)

    def _deliver(self, due: list[int]) -> int:
        items = self._items(due)
        batches = group_by_target(items)

        def make_op(targets: list[Target]) -> bytes:
            return DeliveryOp(due, targets).encode()

        op_offset, _ = relay_append(
            self._store, self._append_lock, SCHEDULE_OP_QUEUE_ID, make_op, batches
        )
        self._tracker.settle(op_offset, due)
        for queue_id, _, payloads in batches:
            meta = self._lookup(queue_id)
            if meta is not None:
                self._on_delivered(meta, payloads)
        return len(items)

    def next_due(self) -> int | None:
        with self._lock:
            return self._heap.next_due()

    def pending(self) -> int:
        with self._lock:
            return len(self._heap)

    def save_progress(self) -> bool:
        """Record the restart point in the offset store (persisted with it); return
        whether it moved since the last call."""
        with self._lock:
            checkpoint = self._tracker.checkpoint()
        return self._progress.save(checkpoint)

    def run(self, stop: threading.Event, clock: Callable[[], int], tick_ms: int) -> None:
        """Deliver due messages until ``stop`` is set, sleeping until the next is due
        or a new one is scheduled (at most ``tick_ms``, so an injected clock that
        jumps is noticed)."""
        while not stop.is_set():
            try:
                self.deliver_due(clock())
            except Exception:  # keep the thread alive; the next round retries
                log.exception("delayed delivery failed")
            with self._lock:
                next_due = self._heap.next_due()
                wait_ms = tick_ms if next_due is None else min(tick_ms, next_due - clock())
                if wait_ms > 0 and not stop.is_set():
                    self.changed.wait(wait_ms / 1000)
