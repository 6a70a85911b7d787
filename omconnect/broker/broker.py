"""`Broker`: the bundled broker in-process, composing its parts over one `MessageStore`.

Layout of ``config.data_dir``: the store's ``commitlog/``, ``consumequeue/`` and
``checkpoint``; ``metadata.json`` (namespaces and queues); ``consumer_offsets.json``
(committed offsets and the relays' progress); ``kv/`` (the KV store's own log).

Every method is thread-safe and may block (long polls, sync-mode fsync waits); the
TCP server runs them in a thread pool. Long polls (`read`, `kv_watch`,
`transaction_checks`) return as soon as there is something, at most after
``max_wait_ms`` (capped by ``config.max_wait_ms``).

Background threads: KV TTL expiry (``ttl_check_interval_ms``), delayed delivery,
retention (``retention_check_interval_ms``), and persistence of offsets and relay
progress (``offsets_persist_interval_ms``). `close` stops them and flushes.
"""

from __future__ import annotations

import fcntl
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from prometheus_client import CollectorRegistry

from omconnect import batch_codec, codec
from omconnect.broker.api import (
    BrokerApi,
    HalfMessage,
    KeyValue,
    KvEvent,
    QueueInfo,
    ReadResult,
    StoredMessage,
)
from omconnect.broker.commitlog import BATCH_HEADER_SIZE
from omconnect.broker.config import MAX_TRANSACTION_ID_LENGTH, BrokerConfig
from omconnect.broker.delay import DelayedDelivery
from omconnect.broker.kv import KvStore, validate_key
from omconnect.broker.metadata import MetadataStore, QueueMeta, validate_name
from omconnect.broker.metrics import BrokerMetrics, GroupLag, group_lag
from omconnect.broker.offsets import OffsetStore, validate_offsets
from omconnect.broker.store import MessageStore, StoreStats
from omconnect.broker.transactions import TransactionLog
from omconnect.errors import ConfigError

log = logging.getLogger(__name__)


def epoch_ms() -> int:
    """Wall-clock time in epoch milliseconds (the default clock)."""
    return time.time_ns() // 1_000_000


class Broker(BrokerApi):
    """The in-process broker. Opening it recovers the store, replays the KV log and
    the delayed/transactional relays, and starts the background threads.

    ``clock`` (epoch ms) drives store timestamps, message expiry, delayed delivery,
    transaction checks and KV TTLs; tests inject one. Waits are in real time.
    """

    def __init__(self, config: BrokerConfig, clock: Callable[[], int] = epoch_ms) -> None:
        self.config = config
        # Read by the TCP server: writes that never wait for an fsync may run on its
        # event loop instead of a thread pool.
        self.writes_wait_for_fsync = config.store.flush_mode == "sync"
        self._clock = clock
        data_dir = config.data_dir
        data_dir.mkdir(parents=True, exist_ok=True)
        self._lock_fd = lock_data_dir(data_dir)
        self._closed = False
        self._close_lock = threading.Lock()
        self._stop = threading.Event()
        self._append_lock = threading.Lock()
        self._arrived = threading.Condition()  # notified after every append
        try:
            self._metadata = MetadataStore(data_dir)
            self._offsets = OffsetStore(data_dir)
            self._store = MessageStore(data_dir, config.internal_store_config(), clock)
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._store.add_append_listener(self._on_append)
        self.metrics = BrokerMetrics(self)
        try:  # a failed open must not leave the store's threads and files behind
            self._kv = KvStore(
                data_dir / "kv",
                config.kv_store_config(),
                clock,
                history_limit=config.kv_history_limit,
                compaction_factor=config.kv_compaction_factor,
                compaction_min_records=config.kv_compaction_min_records,
                max_value_bytes=config.kv_max_value_bytes,
            )
            self._delay = DelayedDelivery(
                self._store, self._offsets, self._metadata.by_id, self._append_lock, self._count_in
            )
            self._transactions = TransactionLog(
                self._store,
                self._offsets,
                self._metadata.by_id,
                self._append_lock,
                config.transaction_check_interval_ms,
                self._count_in,
            )
        except BaseException:
            kv = getattr(self, "_kv", None)
            if kv is not None:
                kv.close()
            self._store.close()
            os.close(self._lock_fd)
            raise
        self._threads = [
            self._periodic("kv-ttl", config.ttl_check_interval_ms, self._kv.expire),
            self._periodic("retention", config.retention_check_interval_ms, self._retention),
            self._periodic("offsets", config.offsets_persist_interval_ms, self._persist_offsets),
            threading.Thread(
                target=self._delay.run,
                args=(self._stop, clock, config.scheduler_tick_ms),
                name="omconnect-broker-delay",
                daemon=True,
            ),
        ]
        for thread in self._threads:
            thread.start()

    @property
    def metrics_registry(self) -> CollectorRegistry:
        """The Prometheus `CollectorRegistry` of this broker."""
        return self.metrics.registry

    # -- background --------------------------------------------------------------------
    def _periodic(
        self, name: str, interval_ms: int, task: Callable[[], object]
    ) -> threading.Thread:
        def run() -> None:
            while not self._stop.wait(interval_ms / 1000):
                try:
                    task()
                except Exception:  # keep going: the next round retries
                    log.exception("broker background task %s failed", name)

        return threading.Thread(target=run, name=f"omconnect-broker-{name}", daemon=True)

    def _retention(self) -> None:
        deleted = self._store.enforce_retention()
        if deleted:
            log.info("retention deleted %d commit-log segments", deleted)

    def _persist_offsets(self) -> None:
        moved = self._delay.save_progress()
        moved = self._transactions.save_progress() or moved
        if moved:  # the ops a saved progress relies on must be on disk first
            self._store.flush()
        self._offsets.persist()

    def _on_append(self, queue_id: int, partition: int, next_offset: int) -> None:
        with self._arrived:
            self._arrived.notify_all()

    def _count_in(self, meta: QueueMeta, payloads: list[bytes]) -> None:
        self.metrics.record_in(meta.namespace, meta.name, payloads)

    # -- resources ---------------------------------------------------------------------
    def create_namespace(self, namespace: str) -> None:
        self._metadata.create_namespace(namespace)

    def delete_namespace(self, namespace: str) -> None:
        removed = self._metadata.delete_namespace(namespace)
        self._transactions.roll_back_namespace(namespace)
        self._kv.delete_namespace(namespace)
        self._offsets.drop_namespace(namespace)
        for meta in removed:
            self._store.drop_queue(meta.queue_id)
            self.metrics.forget_queue(meta.namespace, meta.name)

    def list_namespaces(self) -> list[str]:
        return self._metadata.namespaces()

    def create_queue(self, namespace: str, queue: str, partitions: int) -> QueueInfo:
        return self._metadata.create_queue(namespace, queue, partitions).info()

    def delete_queue(self, namespace: str, queue: str) -> None:
        meta = self._metadata.delete_queue(namespace, queue)
        self._offsets.drop_queue(namespace, queue)
        self._store.drop_queue(meta.queue_id)
        self.metrics.forget_queue(namespace, queue)

    def list_queues(self, namespace: str) -> list[QueueInfo]:
        return [meta.info() for meta in self._metadata.queues(namespace)]

    def queue_info(self, namespace: str, queue: str) -> QueueInfo:
        return self._metadata.queue(namespace, queue).info()

    def _partition(self, namespace: str, queue: str, partition: int) -> QueueMeta:
        """The queue, after checking ``partition`` is one of its partitions."""
        meta = self._metadata.queue(namespace, queue)
        if isinstance(partition, bool) or not isinstance(partition, int):
            raise ConfigError("partition", "must be an integer")
        if not 0 <= partition < meta.partitions:
            raise ConfigError(
                "partition",
                f"{partition} is not in 0..{meta.partitions - 1} of {namespace}/{queue}",
            )
        return meta

    def _check_messages(self, messages: Sequence[bytes]) -> list[bytes]:
        """The messages as bytes, after checking each one's size and CRC."""
        if isinstance(messages, bytes | str) or not isinstance(messages, Sequence):
            raise ConfigError("messages", "must be a sequence of encoded messages")
        return codec.verify_batch(messages, self.config.max_message_bytes)

    # -- produce -----------------------------------------------------------------------
    def append(
        self, namespace: str, queue: str, partition: int, messages: Sequence[bytes]
    ) -> list[int]:
        meta = self._partition(namespace, queue, partition)
        payloads = self._check_messages(messages)
        if not payloads:
            return []
        with self._append_lock:
            result = self._store.append(meta.queue_id, partition, payloads)
        self._store.wait_durable(result.end_position)
        self.metrics.record_in(namespace, queue, payloads)
        return list(range(result.first_offset, result.first_offset + len(payloads)))

    def append_batch(
        self, namespace: str, queue: str, partition: int, batch: bytes | bytearray
    ) -> int:
        """See `BrokerApi.append_batch`. The batch is stored as one batch record; one
        larger than ``max_message_bytes`` (or a segment) is stored message by message,
        each checked against the limit as `append` does."""
        meta = self._partition(namespace, queue, partition)
        if not isinstance(batch, bytes | bytearray | memoryview):
            raise ConfigError("batch", "must be a batch encoding (bytes)")
        batch = bytes(batch)
        count = batch_codec.check_batch(batch)
        limit = self.config.store.segment_bytes - BATCH_HEADER_SIZE
        if len(batch) > min(self.config.max_message_bytes, limit):
            return self.append(namespace, queue, partition, batch_codec.split_batch(batch))[0]
        with self._append_lock:
            result = self._store.append_batch(meta.queue_id, partition, batch, count)
        self._store.wait_durable(result.end_position)
        self.metrics.record_in_count(namespace, queue, count, len(batch))
        return result.first_offset

    def append_delayed(
        self,
        namespace: str,
        queue: str,
        partition: int,
        messages: Sequence[bytes],
        deliver_at: Sequence[int],
    ) -> None:
        meta = self._partition(namespace, queue, partition)
        payloads = self._check_messages(messages)
        times = list(deliver_at)
        if len(times) != len(payloads):
            raise ConfigError("deliver_at", "must have one time per message")
        now = self._clock()
        retention_ms = self.config.store.retention_ms
        for at in times:
            if isinstance(at, bool) or not isinstance(at, int):
                raise ConfigError("deliver_at", f"{at!r} is not an epoch-ms integer")
            if retention_ms and at - now >= retention_ms:
                raise ConfigError(
                    "deliver_at",
                    f"a delay of {at - now} ms reaches past retention ({retention_ms})",
                )
        due = [p for p, at in zip(payloads, times, strict=True) if at <= now]
        later = [(p, at) for p, at in zip(payloads, times, strict=True) if at > now]
        if due:
            self.append(namespace, queue, partition, due)
        if later:
            position = self._delay.schedule(
                meta.queue_id, partition, [p for p, _ in later], [at for _, at in later]
            )
            self._store.wait_durable(position)

    # -- transactions ------------------------------------------------------------------
    def prepare(
        self,
        namespace: str,
        producer_group: str,
        transaction_id: str,
        queue: str,
        partition: int,
        messages: Sequence[bytes],
    ) -> None:
        meta = self._partition(namespace, queue, partition)
        validate_name("producer_group", producer_group)
        _check_transaction_id(transaction_id)
        payloads = self._check_messages(messages)
        if payloads:
            position = self._transactions.prepare(
                namespace, producer_group, transaction_id, meta, partition, payloads, self._clock()
            )
            self._store.wait_durable(position)

    def end_transaction(self, namespace: str, transaction_id: str, commit: bool) -> None:
        self._metadata.require_namespace(namespace)
        _check_transaction_id(transaction_id)
        position = self._transactions.end(namespace, transaction_id, bool(commit))
        if position is not None:
            self._store.wait_durable(position)

    def transaction_checks(
        self, namespace: str, producer_group: str, max_wait_ms: int
    ) -> list[HalfMessage]:
        self._metadata.require_namespace(namespace)
        validate_name("producer_group", producer_group)
        deadline = time.monotonic() + self._wait_s(max_wait_ms)
        tick_s = self.config.scheduler_tick_ms / 1000
        while True:
            due = self._transactions.due_checks(namespace, producer_group, self._clock())
            remaining = deadline - time.monotonic()
            if due or remaining <= 0 or self._stop.is_set():
                return due
            self._stop.wait(min(remaining, tick_s))  # checks fall due with time, not events

    # -- consume -----------------------------------------------------------------------
    def read(
        self,
        namespace: str,
        queue: str,
        partition: int,
        offset: int,
        max_messages: int,
        max_wait_ms: int,
        max_bytes: int = 4 << 20,
    ) -> ReadResult:
        return self._poll(
            namespace, queue, partition, offset, max_messages, max_wait_ms, max_bytes, False
        )

    def read_batches(
        self,
        namespace: str,
        queue: str,
        partition: int,
        offset: int,
        max_messages: int,
        max_wait_ms: int,
        max_bytes: int = 4 << 20,
    ) -> ReadResult:
        return self._poll(
            namespace, queue, partition, offset, max_messages, max_wait_ms, max_bytes, True
        )

    def _poll(
        self,
        namespace: str,
        queue: str,
        partition: int,
        offset: int,
        max_messages: int,
        max_wait_ms: int,
        max_bytes: int,
        whole_batches: bool,
    ) -> ReadResult:
        """`read` (``whole_batches`` False) or `read_batches`: long-polls until
        something is there or ``max_wait_ms`` passed."""
        meta = self._partition(namespace, queue, partition)
        for name, value, low in (
            ("offset", offset, 0),
            ("max_messages", max_messages, 1),
            ("max_bytes", max_bytes, 1),
        ):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ConfigError(name, f"must be an integer >= {low}")
        deadline = time.monotonic() + self._wait_s(max_wait_ms)
        while True:
            result = self._read_once(
                meta, partition, offset, max_messages, max_bytes, whole_batches
            )
            if result.messages:
                messages = result.messages
                sizes = sum(len(m.encoded) for m in messages)
                self.metrics.record_out_count(
                    namespace, queue, sum(m.count for m in messages), sizes
                )
                return result
            offset = result.next_offset
            with self._arrived:
                while self._store.offset_range(meta.queue_id, partition)[1] <= offset:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._stop.is_set():
                        return result
                    self._arrived.wait(remaining)

    def _read_once(
        self,
        meta: QueueMeta,
        partition: int,
        offset: int,
        max_messages: int,
        max_bytes: int,
        whole_batches: bool,
    ) -> ReadResult:
        """What is there now from ``offset``, skipping expired messages (reading on
        past them, so a run of expired messages does not stall the reader)."""
        first, end = self._store.offset_range(meta.queue_id, partition)
        offset = max(offset, first)
        while offset < end:
            records = self._store.read(meta.queue_id, partition, offset, max_messages, max_bytes)
            if not records:
                break
            start, offset = offset, records[-1].offset + records[-1].count
            if whole_batches:
                live = self._live_records(records, start)
            else:
                live = self._unexpired(_one_per_message(records, start))
                if len(live) > max_messages:  # the last batch record reached past it
                    live = live[:max_messages]
                    offset = live[-1].offset + 1
            if live:
                return ReadResult(live, offset)
        return ReadResult([], offset)

    def _live_records(self, records: list[StoredMessage], start: int) -> list[StoredMessage]:
        """Records as stored, minus expired messages. A batch record holding a
        message with an expire time is served message by message instead."""
        out: list[StoredMessage] = []
        for record in records:
            encoded = record.encoded
            if not batch_codec.is_batch(encoded):
                out.extend(self._unexpired([record]))
            elif batch_codec.batch_flags(encoded) & codec.FLAG_EXPIRES:
                out.extend(self._unexpired(_one_per_message([record], start)))
            else:
                out.append(record)
        return out

    def _unexpired(self, batch: list[StoredMessage]) -> list[StoredMessage]:
        now = self._clock()
        live = []
        for message in batch:
            expire_time = codec.peek_expire_time(message.encoded)
            if expire_time == 0 or expire_time >= now:
                live.append(message)
        return live

    def offset_range(self, namespace: str, queue: str, partition: int) -> tuple[int, int]:
        meta = self._partition(namespace, queue, partition)
        return self._store.offset_range(meta.queue_id, partition)

    def commit_offsets(
        self, namespace: str, group: str, queue: str, offsets: dict[int, int]
    ) -> None:
        meta = self._metadata.queue(namespace, queue)
        validate_name("group", group)
        validate_offsets(offsets)
        for partition in offsets:
            if partition >= meta.partitions:
                raise ConfigError("offsets", f"partition {partition} of {namespace}/{queue}")
        self._offsets.commit(namespace, group, queue, offsets)

    def committed_offsets(self, namespace: str, group: str, queue: str) -> dict[int, int]:
        self._metadata.queue(namespace, queue)
        validate_name("group", group)
        return self._offsets.committed(namespace, group, queue)

    # -- key-value store ---------------------------------------------------------------
    def kv_get(self, namespace: str, key: str) -> KeyValue | None:
        self._metadata.require_namespace(namespace)
        return self._kv.get(namespace, validate_key(key))

    def kv_put(self, namespace: str, key: str, value: bytes, ttl_ms: int = 0) -> int:
        self._metadata.require_namespace(namespace)
        return self._kv.put(namespace, key, value, ttl_ms)

    def kv_cas(
        self, namespace: str, key: str, value: bytes, expected_revision: int, ttl_ms: int = 0
    ) -> int | None:
        self._metadata.require_namespace(namespace)
        return self._kv.cas(namespace, key, value, expected_revision, ttl_ms)

    def kv_delete(self, namespace: str, key: str, expected_revision: int = -1) -> bool:
        self._metadata.require_namespace(namespace)
        return self._kv.delete(namespace, key, expected_revision)

    def kv_list(self, namespace: str, prefix: str) -> list[KeyValue]:
        self._metadata.require_namespace(namespace)
        return self._kv.list_prefix(namespace, str(prefix))

    def kv_watch(
        self, namespace: str, prefix: str, from_revision: int, max_wait_ms: int
    ) -> tuple[list[KvEvent], int]:
        """See `BrokerApi.kv_watch`; a ``from_revision`` <= 0 means changes from now on."""
        self._metadata.require_namespace(namespace)
        return self._kv.watch(
            namespace, str(prefix), from_revision, int(self._wait_s(max_wait_ms) * 1000)
        )

    # -- metrics source ----------------------------------------------------------------
    def consumer_lags(self) -> list[GroupLag]:
        lags = []
        for (namespace, group, queue), committed in self._offsets.items():
            if namespace.startswith("%"):
                continue  # the relays' progress, not a consumer group
            try:
                meta = self._metadata.queue(namespace, queue)
            except LookupError:
                continue
            ends = {p: self._store.offset_range(meta.queue_id, p)[1] for p in committed}
            lags.append(group_lag(namespace, group, queue, committed, ends))
        return lags

    def store_size_bytes(self) -> int:
        return self._store.size_bytes() + self._kv_size()

    def _kv_size(self) -> int:
        return sum(
            f.stat().st_size for f in (self.config.data_dir / "kv").rglob("*") if f.is_file()
        )

    def store_stats(self) -> StoreStats:
        return self._store.stats()

    def kv_key_count(self) -> int:
        return self._kv.key_count()

    def pending_delayed(self) -> int:
        return self._delay.pending()

    def pending_half_messages(self) -> int:
        return self._transactions.pending()

    # -- lifecycle ---------------------------------------------------------------------
    def _wait_s(self, max_wait_ms: int) -> float:
        if isinstance(max_wait_ms, bool) or not isinstance(max_wait_ms, int) or max_wait_ms < 0:
            raise ConfigError("max_wait_ms", "must be an integer >= 0")
        return min(max_wait_ms, self.config.max_wait_ms) / 1000

    def close(self) -> None:
        """Stop the background threads, wake long polls, save offsets and relay
        progress, flush and close the stores. Idempotent."""
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self._stop.set()
        with self._delay.changed:
            self._delay.changed.notify_all()
        with self._arrived:
            self._arrived.notify_all()
        for thread in self._threads:
            thread.join()
        self._delay.save_progress()
        self._transactions.save_progress()
        self._store.flush()
        self._offsets.persist()
        self._kv.close()
        self._store.close()
        os.close(self._lock_fd)  # releases the data directory's lock

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _one_per_message(records: list[StoredMessage], start: int) -> list[StoredMessage]:
    """The messages of ``records`` at offsets from ``start`` on, one `StoredMessage`
    (with a version-1 encoding) each: batch records are split."""
    out: list[StoredMessage] = []
    for record in records:
        if not batch_codec.is_batch(record.encoded):
            out.append(record)
            continue
        for i, encoded in enumerate(batch_codec.split_batch(record.encoded)):
            if record.offset + i >= start:
                out.append(
                    StoredMessage(
                        record.partition, record.offset + i, record.store_timestamp, encoded
                    )
                )
    return out


def lock_data_dir(data_dir: Path) -> int:
    """Take the exclusive lock of ``data_dir`` (a ``LOCK`` file, flock) and return its
    descriptor; closing it releases the lock (so does the process dying). Two brokers
    on one directory would corrupt it: the second gets a `ConfigError`."""
    fd = os.open(data_dir / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(
            "data_dir", f"{data_dir} is in use by another broker (pid {holder}); stop it first"
        ) from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    return fd


def _check_transaction_id(transaction_id: object) -> None:
    if not isinstance(transaction_id, str) or not transaction_id:
        raise ConfigError("transaction_id", "must be a non-empty string")
    if len(transaction_id) > MAX_TRANSACTION_ID_LENGTH:
        raise ConfigError("transaction_id", f"must be at most {MAX_TRANSACTION_ID_LENGTH} chars")
