"""Pull consumers in consumer groups: receive, ack, nack, redelivery, dead letters.

A `PullConsumer` joins its group (`omconnect.membership`), owns a share of the
partitions of its queues, and runs one fetch thread per owned partition that
long-polls the broker into a local buffer. `receive` hands messages out; `ack`
marks them done. The committed offset of a partition only ever moves over an
unbroken run of acked messages (`omconnect.inflight`), so a crash redelivers,
never loses.

Redelivery follows RocketMQ: a `nack` — or a message not acked within
``ack_timeout_ms`` — is sent again to the group's retry queue ``%RETRY%<group>``
(which the group also consumes) with ``delivery_count`` + 1, after an exponential
backoff; once ``delivery_count`` reaches ``max_deliveries`` it goes to the group's
dead-letter queue ``%DLQ%<group>`` instead. The original is then acked. A message
redelivered because its consumer crashed comes back with the same count.
"""

from __future__ import annotations

import dataclasses
import logging
import operator
import queue as queue_mod
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from omconnect import batch_codec, codec
from omconnect.broker.api import BrokerApi, StoredMessage
from omconnect.errors import ConfigError, CorruptDataError, NotFoundError, OmConnectError
from omconnect.inflight import InFlight
from omconnect.membership import GroupMembership
from omconnect.message import Message
from omconnect.partitioning import QueuePartition

log = logging.getLogger(__name__)

ORIGIN_QUEUE = "ORIGIN_QUEUE"
ORIGIN_PARTITION = "ORIGIN_PARTITION"
ORIGIN_OFFSET = "ORIGIN_OFFSET"


def retry_queue(group: str) -> str:
    """The queue a group's nacked messages wait in before redelivery."""
    return f"%RETRY%{group}"


def dead_letter_queue(group: str) -> str:
    """The queue a group's messages go to after ``max_deliveries`` failures."""
    return f"%DLQ%{group}"


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """How a consumer behaves. ``start_from`` applies to partitions the group has
    never committed an offset for."""

    group: str
    queues: tuple[str, ...]
    member_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    start_from: Literal["earliest", "latest"] = "latest"
    session_timeout_ms: int = 10_000
    max_deliveries: int = 16
    ack_timeout_ms: int = 60_000
    retry_backoff_ms: int = 1_000
    retry_backoff_max_ms: int = 60_000
    auto_commit_interval_ms: int = 1_000
    fetch_max_messages: int = 500
    buffer_messages: int = 10_000

    def __post_init__(self) -> None:
        if not self.group:
            raise ConfigError("group", "a consumer needs a group name")
        if not self.queues:
            raise ConfigError("queues", "a consumer needs at least one queue")
        if self.start_from not in ("earliest", "latest"):
            raise ConfigError("start_from", "must be 'earliest' or 'latest'")
        if self.max_deliveries < 1:
            raise ConfigError("max_deliveries", "must be at least 1")
        if self.session_timeout_ms < 300:
            raise ConfigError("session_timeout_ms", "must be at least 300")


def retry_delay_ms(delivery_count: int, base_ms: int, max_ms: int) -> int:
    """Backoff before redelivery number ``delivery_count`` (1, 2, ...): doubling, capped."""
    return int(min(max_ms, base_ms * 2 ** max(0, delivery_count - 1)))


class _Fetcher(threading.Thread):
    """Long-polls one partition into the consumer's buffer until stopped."""

    def __init__(
        self, consumer: PullConsumer, queue: str, partition: int, offset: int, epoch: int
    ) -> None:
        super().__init__(daemon=True, name=f"omconnect-fetch-{queue}-{partition}")
        self.consumer, self.queue, self.partition = consumer, queue, partition
        self.offset, self.epoch = offset, epoch
        self.stopped = threading.Event()

    def run(self) -> None:
        c = self.consumer
        while not self.stopped.is_set():
            try:
                result = c._backend.read_batches(
                    c.namespace,
                    self.queue,
                    self.partition,
                    self.offset,
                    c.config.fetch_max_messages,
                    max_wait_ms=500,
                )
            except OmConnectError as exc:
                if self.stopped.is_set():  # revoked or closing: the error is moot
                    return
                log.warning("fetch %s/%d: %s; retrying", self.queue, self.partition, exc)
                self.stopped.wait(0.5)
                continue
            if result.messages:
                self._put((self.queue, self.partition, self.epoch, self.offset, result.messages))
            elif result.next_offset > self.offset:
                self._put((self.queue, self.partition, self.epoch, self.offset, result.next_offset))
            self.offset = result.next_offset

    def _put(self, item: _BufferItem) -> None:
        while not self.stopped.is_set():
            try:
                self.consumer._buffer.put(item, timeout=0.2)
                return
            except queue_mod.Full:
                continue


# (queue, partition, epoch, offset read from, what the read returned or the next offset)
_BufferItem = tuple[str, int, int, int, "list[StoredMessage] | int"]


class PullConsumer:
    """A consumer-group member that the application pulls messages from.

    Thread-safe for `ack`/`nack` from any thread; `receive` from one thread at a
    time is the intended use. Call `close` to commit and leave the group promptly.
    """

    def __init__(self, backend: BrokerApi, namespace: str, config: ConsumerConfig) -> None:
        self._backend = backend
        self.namespace = namespace
        self.config = config
        self._lock = threading.RLock()
        self._buffer: queue_mod.Queue[_BufferItem] = queue_mod.Queue(
            max(1, config.buffer_messages // max(1, config.fetch_max_messages))
        )
        self._ready: list[Message] = []
        self._fetchers: dict[QueuePartition, _Fetcher] = {}
        self._trackers: dict[QueuePartition, InFlight] = {}
        self._epochs: dict[QueuePartition, int] = {}
        self._epoch = 0
        self._outstanding: dict[tuple[str, int, int], float] = {}  # -> receive time
        self._last_commit = time.monotonic()
        self._closed = False
        self._queues = (*config.queues, retry_queue(config.group))
        self._ensure_internal_queues()
        self._membership = GroupMembership(
            backend,
            namespace,
            config.group,
            config.member_id,
            self._all_partitions,
            self._assign,
            config.session_timeout_ms,
        )
        self._membership.start()

    # -- the application's side ------------------------------------------------
    def receive(self, timeout_ms: int = 1000) -> Message | None:
        """The next message, or None if none arrived within ``timeout_ms``."""
        batch = self.batch_receive(1, timeout_ms)
        return batch[0] if batch else None

    def batch_receive(self, max_messages: int, timeout_ms: int = 1000) -> list[Message]:
        """Up to ``max_messages`` messages; waits up to ``timeout_ms`` for the first."""
        self._housekeeping()
        deadline = time.monotonic() + timeout_ms / 1000
        while not self._ready:
            remaining = deadline - time.monotonic()
            try:
                item = (
                    self._buffer.get(timeout=max(0.0, remaining))
                    if remaining > 0
                    else (self._buffer.get_nowait())
                )
            except queue_mod.Empty:
                return []
            self._unpack(item)
        with self._lock:
            out, self._ready = self._ready[:max_messages], self._ready[max_messages:]
            if self.config.ack_timeout_ms > 0:  # only the ack timeout reads them
                self._outstanding.update(dict.fromkeys(map(_RECEIPT, out), time.monotonic()))
        return out

    def ack(self, message: Message) -> None:
        """Mark a received message as processed; its offset may now be committed."""
        key = _key(message)
        queue, partition, offset = key
        with self._lock:
            if self._outstanding:  # empty unless an ack timeout is set
                self._outstanding.pop(key, None)
            tracker = self._trackers.get((queue, partition))
            if tracker is not None:  # else the partition moved away: it is redelivered there
                tracker.acked(offset)

    def nack(self, message: Message) -> None:
        """Processing failed: redeliver later (retry queue) or dead-letter it."""
        self._redeliver(message)
        self.ack(message)

    def commit(self) -> None:
        """Commit every partition's offset up to its unbroken run of acked messages."""
        with self._lock:
            by_queue: dict[str, dict[int, int]] = {}
            for (queue, partition), tracker in self._trackers.items():
                by_queue.setdefault(queue, {})[partition] = tracker.committable
            self._last_commit = time.monotonic()
        for queue, offsets in by_queue.items():
            self._backend.commit_offsets(self.namespace, self.config.group, queue, offsets)

    @property
    def assignment(self) -> list[QueuePartition]:
        """The (queue, partition) pairs this member owns now."""
        with self._lock:
            return sorted(self._fetchers)

    def close(self) -> None:
        """Commit acked offsets, stop fetching and leave the group."""
        if self._closed:
            return
        self._closed = True
        self._membership.leave()
        self._assign([])

    def __enter__(self) -> PullConsumer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------
    def _ensure_internal_queues(self) -> None:
        for name in (retry_queue(self.config.group), dead_letter_queue(self.config.group)):
            self._backend.create_queue(self.namespace, name, 1)
        for name in self.config.queues:
            self._backend.queue_info(self.namespace, name)  # NotFoundError names it

    def _all_partitions(self) -> list[QueuePartition]:
        pairs: list[QueuePartition] = []
        for name in self._queues:
            try:
                count = self._backend.queue_info(self.namespace, name).partitions
            except NotFoundError:
                continue
            pairs.extend((name, p) for p in range(count))
        return pairs

    def _assign(self, assignment: Sequence[QueuePartition]) -> None:
        """Stop fetchers of revoked partitions (committing them), start new ones."""
        wanted = set(assignment)
        with self._lock:
            revoked = [qp for qp in self._fetchers if qp not in wanted]
            for qp in revoked:
                self._fetchers.pop(qp).stopped.set()
        if revoked:
            try:
                self.commit()
            except OmConnectError as exc:  # not committed: the next owner redelivers
                log.warning("commit on revoke failed for group %s: %s", self.config.group, exc)
            with self._lock:
                for qp in revoked:
                    self._trackers.pop(qp, None)
                    self._epochs.pop(qp, None)
                self._ready = [m for m in self._ready if _key(m)[:2] in self._fetchers]
        added = [qp for qp in sorted(wanted) if qp not in self._fetchers]
        for queue, partition in added:
            offset = self._start_offset(queue, partition)
            with self._lock:
                self._epoch += 1
                self._epochs[(queue, partition)] = self._epoch
                self._trackers[(queue, partition)] = InFlight(offset)
                fetcher = _Fetcher(self, queue, partition, offset, self._epoch)
                self._fetchers[(queue, partition)] = fetcher
            fetcher.start()
        if revoked or added:
            log.info("%s owns %s", self.config.member_id, sorted(wanted))

    def _start_offset(self, queue: str, partition: int) -> int:
        committed = self._backend.committed_offsets(self.namespace, self.config.group, queue)
        if partition in committed:
            return committed[partition]
        first, end = self._backend.offset_range(self.namespace, queue, partition)
        internal = queue == retry_queue(self.config.group)
        return first if internal or self.config.start_from == "earliest" else end

    def _unpack(self, item: _BufferItem) -> None:
        queue, partition, epoch, start, payload = item
        with self._lock:
            if self._epochs.get((queue, partition)) != epoch:
                return  # fetched before the partition was revoked
            tracker = self._trackers[(queue, partition)]
            if isinstance(payload, int):
                tracker.skipped_to(payload)
                return
            for stored in payload:
                try:
                    messages = batch_codec.decode_delivered(
                        stored.encoded,
                        queue,
                        stored.partition,
                        stored.offset,
                        stored.store_timestamp,
                    )
                except CorruptDataError as exc:  # the broker checked the CRC: a format bug
                    log.error(
                        "undecodable message %s/%d@%d: %s", queue, partition, stored.offset, exc
                    )
                    continue
                if stored.offset < start:  # a batch that began before the offset read from
                    messages = messages[start - stored.offset :]
                if messages:
                    tracker.delivered_range(messages[0].offset, messages[-1].offset + 1)
                    self._ready.extend(messages)

    def _housekeeping(self) -> None:
        now = time.monotonic()
        if self.config.ack_timeout_ms > 0:
            limit = now - self.config.ack_timeout_ms / 1000
            with self._lock:
                expired = [k for k, t in self._outstanding.items() if t < limit]
            for key in expired:
                log.info("ack timeout for %s: redelivering", key)
                self._timeout(key)
        if now - self._last_commit >= self.config.auto_commit_interval_ms / 1000:
            self.commit()

    def _timeout(self, key: tuple[str, int, int]) -> None:
        queue, partition, offset = key
        stored = self._backend.read(self.namespace, queue, partition, offset, 1, 0)
        for s in stored.messages[:1]:
            if s.offset == offset:
                message = codec.decode(s.encoded)
                message.partition, message.offset = partition, offset
                message.receipt = key
                self.nack(message)

    def _redeliver(self, message: Message) -> None:
        cfg = self.config
        count = message.delivery_count + 1
        origin = {  # the first origin stays when a retry is retried
            ORIGIN_QUEUE: message.destination,
            ORIGIN_PARTITION: str(message.partition),
            ORIGIN_OFFSET: str(message.offset),
        }
        copy = dataclasses.replace(
            message,
            delivery_count=count,
            offset=-1,
            partition=-1,
            store_timestamp=0,
            receipt=None,
            properties={**origin, **message.properties},
        )
        encoded = codec.encode(copy)
        if count >= cfg.max_deliveries:
            self._backend.append(self.namespace, dead_letter_queue(cfg.group), 0, [encoded])
            log.warning("message %s dead-lettered after %d deliveries", message.message_id, count)
            return
        due = int(time.time() * 1000) + retry_delay_ms(
            count, cfg.retry_backoff_ms, cfg.retry_backoff_max_ms
        )
        self._backend.append_delayed(self.namespace, retry_queue(cfg.group), 0, [encoded], [due])


_RECEIPT = operator.attrgetter("receipt")  # set on every message in _ready


def _key(message: Message) -> tuple[str, int, int]:
    if message.receipt is None:
        raise ConfigError("message", "ack/nack takes a message this consumer received")
    return message.receipt
