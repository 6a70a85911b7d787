"""Transactional half messages (RocketMQ's RMQ_SYS_TRANS_HALF_TOPIC and op topic).

`TransactionLog.prepare` appends each message, with its transaction and target,
to the internal half queue: durable, invisible to consumers. `end` decides a
transaction: it writes an op record (commit or rollback, the half offsets it
settles and, for a commit, the offsets its messages should get) and, for a commit,
appends the messages to their queues, with `relay_append` (see `omconnect.broker.delay`
for why that is exactly once). On restart the half and op queues are replayed from
the saved progress: an undecided half message is pending again, a decided one is
not offered again, and a commit whose appends a crash lost is redone.

`transaction_checks` offers each undecided half message once it is older than the
check interval, and again each interval after, until someone decides it.
Pure parts: `HalfRecord`, `TransactionOp`, `PendingTransactions`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial

import msgpack

from omconnect.broker.api import HalfMessage
from omconnect.broker.delay import (
    RelayStore,
    Target,
    group_by_target,
    read_at,
    redo_lost,
    relay_append,
    scan,
)
from omconnect.broker.metadata import TRANS_HALF_QUEUE_ID, TRANS_OP_QUEUE_ID, QueueMeta
from omconnect.broker.offsets import OffsetStore, ProgressTracker, SavedProgress
from omconnect.errors import CorruptDataError

log = logging.getLogger(__name__)

PROGRESS_KEY = ("%sys", "%transactions", "%half")  # partition 0 half queue, 1 op queue


# -- pure ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HalfRecord:
    """One half message as stored in the half queue."""

    namespace: str
    producer_group: str
    transaction_id: str
    queue_id: int
    queue: str
    partition: int
    prepared_at: int
    encoded: bytes

    def encode(self) -> bytes:
        return msgpack.packb(
            [
                self.namespace,
                self.producer_group,
                self.transaction_id,
                self.queue_id,
                self.queue,
                self.partition,
                self.prepared_at,
                self.encoded,
            ],
            use_bin_type=True,
        )

    @classmethod
    def decode(cls, payload: bytes) -> HalfRecord:
        try:
            ns, group, txid, queue_id, queue, partition, prepared_at, encoded = msgpack.unpackb(
                payload
            )
            return cls(
                str(ns),
                str(group),
                str(txid),
                int(queue_id),
                str(queue),
                int(partition),
                int(prepared_at),
                bytes(encoded),
            )
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise CorruptDataError(f"half message record does not parse: {exc}") from exc


@dataclass(frozen=True, slots=True)
class TransactionOp:
    """A decision: commit or roll back the half messages at ``settled``. A commit's
    ``targets`` hold each partition's expected first offset and message count."""

    commit: bool
    namespace: str
    transaction_id: str
    settled: list[int]
    targets: list[Target]

    def encode(self) -> bytes:
        return msgpack.packb(
            [
                self.commit,
                self.namespace,
                self.transaction_id,
                self.settled,
                [list(t) for t in self.targets],
            ],
            use_bin_type=True,
        )

    @classmethod
    def decode(cls, payload: bytes) -> TransactionOp:
        try:
            commit, ns, txid, settled, targets = msgpack.unpackb(payload)
            return cls(
                bool(commit),
                str(ns),
                str(txid),
                [int(s) for s in settled],
                [(int(q), int(p), int(o), int(n)) for q, p, o, n in targets],
            )
        except (ValueError, TypeError, msgpack.UnpackException) as exc:
            raise CorruptDataError(f"transaction op does not parse: {exc}") from exc


@dataclass(slots=True)
class HalfEntry:
    """An undecided half message (its payload stays in the half queue)."""

    offset: int
    record: HalfRecord
    next_check_at: int


class PendingTransactions:
    """Undecided half messages by (namespace, transaction id), with check times. Pure."""

    def __init__(self) -> None:
        self._by_txn: dict[tuple[str, str], list[HalfEntry]] = {}

    def add(self, offset: int, record: HalfRecord, check_interval_ms: int) -> None:
        """A half message is pending; first offered at prepared_at + interval. Its
        payload is not kept: it stays in the half queue."""
        record = replace(record, encoded=b"")
        entry = HalfEntry(offset, record, record.prepared_at + check_interval_ms)
        self._by_txn.setdefault((record.namespace, record.transaction_id), []).append(entry)

    def take(self, namespace: str, transaction_id: str) -> list[HalfEntry]:
        """Remove and return a transaction's half messages in prepare order ([] if unknown)."""
        return self._by_txn.pop((namespace, transaction_id), [])

    def transactions_of(self, namespace: str) -> list[str]:
        return [txid for ns, txid in self._by_txn if ns == namespace]

    def due_checks(
        self, namespace: str, producer_group: str, now: int, check_interval_ms: int
    ) -> list[HalfEntry]:
        """Half messages of the group due for a check at ``now``, in offset order; each
        is next due ``check_interval_ms`` later."""
        due: list[HalfEntry] = []
        for (ns, _), entries in self._by_txn.items():
            if ns != namespace:
                continue
            for entry in entries:
                if entry.record.producer_group == producer_group and entry.next_check_at <= now:
                    entry.next_check_at = now + check_interval_ms
                    due.append(entry)
        due.sort(key=lambda e: e.offset)
        return due

    def __len__(self) -> int:
        return sum(len(entries) for entries in self._by_txn.values())


# -- the shell -------------------------------------------------------------------------


class TransactionLog:
    """Half messages, decisions and check-backs over the broker's store. Thread-safe.
    ``lookup`` maps a queue id to its live queue (None once deleted: a commit then
    drops that queue's messages)."""

    def __init__(
        self,
        store: RelayStore,
        offsets: OffsetStore,
        lookup: Callable[[int], QueueMeta | None],
        append_lock: threading.Lock,
        check_interval_ms: int,
        on_committed: Callable[[QueueMeta, list[bytes]], None] = lambda meta, payloads: None,
    ) -> None:
        self._store = store
        self._lookup = lookup
        self._append_lock = append_lock
        self._interval = check_interval_ms
        self._on_committed = on_committed
        self._lock = threading.Lock()
        self._pending = PendingTransactions()
        self._tracker = ProgressTracker()
        self._progress = SavedProgress(offsets, PROGRESS_KEY)
        self._recover()

    def _recover(self) -> None:
        half_start, op_start = self._progress.load()
        self._tracker = ProgressTracker(half_start, op_start)
        settled: set[int] = set()
        for stored in scan(self._store, TRANS_OP_QUEUE_ID, op_start):
            op = TransactionOp.decode(stored.encoded)
            self._tracker.settle(stored.offset, op.settled)
            settled.update(op.settled)
            if op.commit:
                redo_lost(
                    self._store, self._append_lock, op.targets, partial(self._items, op.settled)
                )
        for stored in scan(self._store, TRANS_HALF_QUEUE_ID, half_start):
            if stored.offset not in settled:
                self._tracker.add(stored.offset)
                self._pending.add(stored.offset, HalfRecord.decode(stored.encoded), self._interval)
        self._tracker.advance_source(self._store.offset_range(TRANS_HALF_QUEUE_ID, 0)[1])
        log.info("transactions recovered: %d undecided half messages", len(self._pending))

    def _items(self, half_offsets: list[int]) -> list[tuple[int, int, bytes]]:
        """(queue id, partition, message) of half messages whose queue still exists."""
        items: list[tuple[int, int, bytes]] = []
        for offset in half_offsets:
            payload = read_at(self._store, TRANS_HALF_QUEUE_ID, offset)
            if payload is None:
                log.warning("half message at offset %d is gone", offset)
                continue
            record = HalfRecord.decode(payload)
            if self._lookup(record.queue_id) is not None:
                items.append((record.queue_id, record.partition, record.encoded))
        return items

    def prepare(
        self,
        namespace: str,
        producer_group: str,
        transaction_id: str,
        meta: QueueMeta,
        partition: int,
        payloads: Sequence[bytes],
        now: int,
    ) -> int:
        """Store half messages; return the end position to wait on for durability."""
        records = [
            HalfRecord(
                namespace,
                producer_group,
                transaction_id,
                meta.queue_id,
                meta.name,
                partition,
                now,
                payload,
            )
            for payload in payloads
        ]
        with self._lock:
            result = self._store.append(TRANS_HALF_QUEUE_ID, 0, [r.encode() for r in records])
            for i, record in enumerate(records):
                self._tracker.add(result.first_offset + i)
                self._pending.add(result.first_offset + i, record, self._interval)
            return result.end_position

    def end(self, namespace: str, transaction_id: str, commit: bool) -> int | None:
        """Commit or roll back; return the end position to wait on, or None when the
        transaction is unknown or already ended (nothing to do)."""
        with self._lock:
            entries = self._pending.take(namespace, transaction_id)
            if not entries:
                return None
            settled = [e.offset for e in entries]
            batches: list[tuple[int, int, list[bytes]]] = []
            if commit:
                batches = group_by_target(self._items(settled))
            op_offset, end = relay_append(
                self._store,
                self._append_lock,
                TRANS_OP_QUEUE_ID,
                lambda targets: TransactionOp(
                    commit, namespace, transaction_id, settled, targets
                ).encode(),
                batches,
            )
            self._tracker.settle(op_offset, settled)
        for queue_id, _, payloads in batches:
            meta = self._lookup(queue_id)
            if meta is not None:
                self._on_committed(meta, payloads)
        return end

    def roll_back_namespace(self, namespace: str) -> None:
        """Roll back every undecided transaction of a namespace (it is being deleted)."""
        with self._lock:
            txids = self._pending.transactions_of(namespace)
        for txid in txids:
            self.end(namespace, txid, commit=False)

    def due_checks(self, namespace: str, producer_group: str, now: int) -> list[HalfMessage]:
        """Half messages due for a check-back now (each offered again an interval later)."""
        with self._lock:
            due = self._pending.due_checks(namespace, producer_group, now, self._interval)
            out: list[HalfMessage] = []
            for entry in due:
                payload = read_at(self._store, TRANS_HALF_QUEUE_ID, entry.offset)
                if payload is None:
                    continue
                record = HalfRecord.decode(payload)
                out.append(
                    HalfMessage(
                        record.transaction_id,
                        record.queue,
                        record.partition,
                        record.encoded,
                        record.prepared_at,
                    )
                )
            return out

    def pending(self) -> int:
        with self._lock:
            return len(self._pending)

    def save_progress(self) -> bool:
        """Record the restart point in the offset store (persisted with it); return
        whether it moved since the last call."""
        with self._lock:
            checkpoint = self._tracker.checkpoint()
        return self._progress.save(checkpoint)
