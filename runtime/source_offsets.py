"""Which source offsets may be committed: the unbroken run of acknowledged records.

A source task's records reach the broker asynchronously and the broker acknowledges
them in any order. The offset of a record may be stored only once that record and
every record submitted before it *for the same source partition* are acknowledged;
storing it earlier would skip the unacknowledged ones after a crash. This is Kafka
Connect's ``SubmittedRecords`` as a small pure class (no I/O; a lock because acks come
from producer callback threads)::

    submitted = SubmittedRecords()
    handle = submitted.submit(record.source_partition, record.source_offset)
    producer.send_async(message, callback=lambda _: handle.ack())
    ...
    offsets = submitted.committable()
    offset_store.put_offsets(connector, [(o.partition, o.offset) for o in offsets.offsets])
    submitted.committed(offsets)          # only after the store write succeeded

A commit that fails is simply not confirmed: the next `committable` offers the same
offsets again (or newer ones of the same partitions).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from omconnect.connect.records import (
    JsonScalar,
    PartitionKey,
    SourceOffset,
    SourcePartition,
    check_source_map,
    partition_key,
)


class SubmittedRecord:
    """The handle of one submitted record; call `ack` once the broker has it."""

    __slots__ = ("_owner", "acked", "key", "offset", "partition", "sequence")

    def __init__(
        self,
        owner: SubmittedRecords,
        sequence: int,
        partition: dict[str, JsonScalar],
        offset: dict[str, JsonScalar],
    ) -> None:
        self._owner = owner
        self.sequence = sequence
        self.partition = partition
        self.offset = offset
        self.key: PartitionKey = partition_key(partition)
        self.acked = False

    def ack(self) -> None:
        """The broker acknowledged the record. Thread-safe; repeated acks are ignored."""
        self._owner._ack(self)


@dataclass(frozen=True, slots=True)
class PartitionOffset:
    """The offset that may be stored for one source partition."""

    partition: SourcePartition
    offset: SourceOffset
    sequence: int  # of the record it came from: lets `committed` spot newer offsets


@dataclass(frozen=True, slots=True)
class CommittableOffsets:
    """What `SubmittedRecords.committable` found.

    ``offsets``: one per partition with something new to store, ordered by partition.
    ``pending``: records submitted and not yet acknowledged. ``largest_backlog``: the
    most records one partition holds back behind an unacknowledged one (for logs).
    """

    offsets: tuple[PartitionOffset, ...]
    pending: int
    largest_backlog: int

    def __bool__(self) -> bool:
        return bool(self.offsets)


class SubmittedRecords:
    """Tracks submitted records per source partition and what may be committed.

    Records must be submitted in the order the task produced them; acks may come in
    any order from any thread. A partition's committable offset is that of its latest
    record such that it and every earlier record of the partition are acknowledged.
    Records with an empty offset count as in flight but never become an offset to
    store. Acknowledged records are forgotten once `committable` passes them.
    """

    def __init__(self) -> None:
        self._lock = threading.Condition()
        self._sequence = 0
        self._records: dict[PartitionKey, deque[SubmittedRecord]] = {}
        self._candidates: dict[PartitionKey, PartitionOffset] = {}
        self._pending = 0

    def submit(
        self, partition: SourcePartition, offset: SourceOffset, *, checked: bool = False
    ) -> SubmittedRecord:
        """Track a record about to be sent; returns the handle to `ack` it with.

        `ConfigError` unless partition and offset are flat maps of JSON scalars.
        ``checked``: they are a `SourceRecord`'s own maps, already checked and copied
        when it was built, so they are kept as they are (not checked again).
        """
        if checked:
            part: dict[str, JsonScalar] = partition  # type: ignore[assignment]
            off: dict[str, JsonScalar] = offset  # type: ignore[assignment]
        else:
            part = check_source_map("source_partition", partition)
            off = check_source_map("source_offset", offset)
        with self._lock:
            self._sequence += 1
            record = SubmittedRecord(self, self._sequence, part, off)
            self._records.setdefault(record.key, deque()).append(record)
            self._pending += 1
        return record

    def drop(self, record: SubmittedRecord) -> bool:
        """Forget a record that will never be acknowledged (its send failed before it
        reached the broker and it will be submitted again). True if it was tracked."""
        with self._lock:
            records = self._records.get(record.key)
            if record.acked or records is None or record not in records:
                return False
            records.remove(record)
            record.acked = True  # a late ack of a dropped record changes nothing
            self._pending -= 1
            if not records:
                del self._records[record.key]
            self._lock.notify_all()
            return True

    def _ack(self, record: SubmittedRecord) -> None:
        with self._lock:
            if record.acked:
                return
            record.acked = True
            self._pending -= 1
            if self._pending == 0:
                self._lock.notify_all()

    def ack_all(self, records: list[SubmittedRecord]) -> None:
        """`SubmittedRecord.ack` for each of ``records``, under one lock."""
        with self._lock:
            for record in records:
                if not record.acked:
                    record.acked = True
                    self._pending -= 1
            if self._pending == 0:
                self._lock.notify_all()

    def committable(self) -> CommittableOffsets:
        """The offsets that may be stored now, per partition; forgets the acknowledged
        records it passes. Offsets stay on offer until `committed` confirms them."""
        with self._lock:
            backlog = 0
            for key in list(self._records):
                records = self._records[key]
                while records and records[0].acked:
                    record = records.popleft()
                    if record.offset:
                        self._candidates[key] = PartitionOffset(
                            record.partition, record.offset, record.sequence
                        )
                if records:
                    backlog = max(backlog, len(records))
                else:
                    del self._records[key]
            offsets = tuple(self._candidates[key] for key in sorted(self._candidates, key=repr))
            return CommittableOffsets(offsets, self._pending, backlog)

    def committed(self, offsets: CommittableOffsets) -> None:
        """The offsets of ``offsets`` are stored: stop offering them (a partition that
        has a newer committable offset meanwhile keeps offering that one)."""
        with self._lock:
            for item in offsets.offsets:
                key = partition_key(item.partition)
                current = self._candidates.get(key)
                if current is not None and current.sequence == item.sequence:
                    del self._candidates[key]

    @property
    def pending(self) -> int:
        """Records submitted and neither acknowledged nor dropped (for backpressure)."""
        with self._lock:
            return self._pending

    def await_all(self, timeout_s: float) -> bool:
        """Block until every submitted record is acknowledged or dropped, at most
        ``timeout_s`` seconds; True if none is left in flight."""
        deadline = time.monotonic() + timeout_s
        with self._lock:
            while self._pending:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._lock.wait(remaining)
            return True
