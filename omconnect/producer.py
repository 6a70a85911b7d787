"""The producer: sync, async, oneway and batch sends, and transactional sends.

A `Producer` turns `Message` objects into their encoding and appends them to the
partition their ``message_key`` picks (CRC-32C of the key; messages without a key
go round-robin). Messages with one key keep their order.

Async and oneway sends go through one background sender thread that drains
everything queued since its last round trip and sends it partition by partition
in batches (Kafka's accumulator, without the linger): many small async sends
become few large appends.
"""

from __future__ import annotations

import itertools
import logging
import os
import queue as queue_mod
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from enum import Enum

from omconnect import batch_codec, codec
from omconnect.broker.api import BrokerApi, HalfMessage
from omconnect.errors import ConfigError, OmConnectError
from omconnect.message import Message
from omconnect.partitioning import partition_for_key

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SendResult:
    """Where a message was stored."""

    message_id: str
    queue: str
    partition: int
    offset: int


class TransactionResolution(Enum):
    """A check-back listener's answer about an undecided transaction."""

    COMMIT = "commit"
    ROLLBACK = "rollback"
    UNKNOWN = "unknown"  # ask again later


CheckListener = Callable[[Message], TransactionResolution]


def now_ms() -> int:
    """Epoch milliseconds."""
    return time.time_ns() // 1_000_000


class Producer:
    """Sends messages to queues of one namespace. Thread-safe.

    ``producer_group`` names the producers whose half messages the broker may ask
    this one about; ``check_listener`` answers those questions (needed for
    transactional sends; without it undecided transactions stay undecided).
    """

    def __init__(
        self,
        backend: BrokerApi,
        namespace: str,
        *,
        producer_group: str = "",
        check_listener: CheckListener | None = None,
        clock: Callable[[], int] = now_ms,
        max_batch: int = 1000,
        max_batch_bytes: int = 1 << 20,
    ) -> None:
        self._backend = backend
        self.namespace = namespace
        self.producer_group = producer_group
        self._clock = clock
        self._max_batch = max_batch
        self._max_batch_bytes = max_batch_bytes
        self._id_prefix = uuid.uuid4().hex[:16]
        self._id_counter = itertools.count()
        self._host = f"{socket.gethostname()}/{os.getpid()}"
        self._round_robin = itertools.count()
        self._partitions: dict[str, int] = {}
        self._pending: queue_mod.SimpleQueue[tuple[list[Message], Future[list[SendResult]]] | None]
        self._pending = queue_mod.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._sender_lock = threading.Lock()
        self._closed = threading.Event()
        self._checker: threading.Thread | None = None
        if check_listener is not None:
            if not producer_group:
                raise ConfigError("producer_group", "a check listener needs a producer group")
            self._checker = threading.Thread(
                target=self._check_loop,
                args=(check_listener,),
                daemon=True,
                name=f"omconnect-txn-check-{producer_group}",
            )
            self._checker.start()

    # -- sending -----------------------------------------------------------------
    def send(self, message: Message) -> SendResult:
        """Send one message and wait until the broker stored it."""
        return self.send_batch([message])[0]

    def send_batch(self, messages: Sequence[Message]) -> list[SendResult]:
        """Send messages and wait until all are stored; results in input order.

        Messages to one partition are stored in input order, in one append per
        partition. A message with ``delay_time`` > 0 becomes visible that many ms
        after its ``born_timestamp``.
        """
        routed = [self._prepare(m) for m in messages]
        results: list[SendResult | None] = [None] * len(routed)
        for (queue, partition, delayed), indexes in _group(routed).items():
            for chunk in _chunks(indexes, routed, self._max_batch, self._max_batch_bytes):
                offsets = self._store(queue, partition, delayed, [routed[i] for i in chunk])
                for i, offset in zip(chunk, offsets, strict=True):
                    results[i] = SendResult(routed[i].message_id, queue, partition, offset)
        return [r for r in results if r is not None]

    def _store(
        self, queue: str, partition: int, delayed: bool, messages: list[Message]
    ) -> Sequence[int]:
        """Send one chunk of prepared messages for one partition; their offsets (-1
        for delayed ones). Two or more undelayed messages travel as one batch."""
        if delayed:
            encoded = [codec.encode(m) for m in messages]
            due = [m.born_timestamp + m.delay_time for m in messages]
            self._backend.append_delayed(self.namespace, queue, partition, encoded, due)
            return [-1] * len(messages)
        if len(messages) == 1:
            return self._backend.append(
                self.namespace, queue, partition, [codec.encode(messages[0])]
            )
        batch = batch_codec.encode_batch(messages)
        first = self._backend.append_batch(self.namespace, queue, partition, batch)
        return range(first, first + len(messages))

    def send_async(self, message: Message) -> Future[SendResult]:
        """Queue one message for the sender thread; the future gives its result."""
        batch_future = self.send_batch_async([message])
        future: Future[SendResult] = Future()

        def done(f: Future[list[SendResult]]) -> None:
            error = f.exception()
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(f.result()[0])

        batch_future.add_done_callback(done)
        return future

    def send_batch_async(self, messages: Sequence[Message]) -> Future[list[SendResult]]:
        """Queue messages for the sender thread; the future resolves with all results."""
        if self._closed.is_set():
            raise OmConnectError("producer is closed")
        future: Future[list[SendResult]] = Future()
        self._ensure_sender()
        self._pending.put((list(messages), future))
        return future

    def send_oneway(self, message: Message) -> None:
        """Send without waiting or learning the outcome (failures are only logged)."""
        self.send_batch_async([message])

    def send_oneway_batch(self, messages: Sequence[Message]) -> None:
        """`send_oneway` for many messages."""
        self.send_batch_async(messages)

    def flush(self) -> None:
        """Wait until every async and oneway send queued so far has completed."""
        if self._sender is None:
            return
        marker: Future[list[SendResult]] = Future()
        self._pending.put(([], marker))
        marker.result()

    # -- transactions ------------------------------------------------------------
    def prepare(self, messages: Sequence[Message]) -> Transaction:
        """Store messages as half messages: invisible until the transaction commits.

        Run the local transaction, then call `Transaction.commit` or `rollback`.
        If this process dies first, the broker asks the group's check listener.
        """
        if not self.producer_group:
            raise ConfigError("producer_group", "transactional sends need a producer group")
        transaction_id = uuid.uuid4().hex
        routed = [self._prepare(m, transaction_id=transaction_id) for m in messages]
        for (queue, partition, _), indexes in _group(routed).items():
            encoded = [codec.encode(routed[i]) for i in indexes]
            self._backend.prepare(
                self.namespace, self.producer_group, transaction_id, queue, partition, encoded
            )
        return Transaction(self._backend, self.namespace, transaction_id, routed)

    # -- lifecycle ---------------------------------------------------------------
    def close(self) -> None:
        """Send what is queued, then stop the background threads."""
        if self._closed.is_set():
            return
        self.flush()
        self._closed.set()
        if self._sender is not None:
            self._pending.put(None)
            self._sender.join()
        if self._checker is not None:
            self._checker.join(timeout=5)

    def __enter__(self) -> Producer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals ---------------------------------------------------------------
    def partitions_of(self, queue: str) -> int:
        """The queue's partition count (asked once, then cached)."""
        count = self._partitions.get(queue)
        if count is None:
            count = self._backend.queue_info(self.namespace, queue).partitions
            self._partitions[queue] = count
        return count

    def _prepare(self, message: Message, transaction_id: str = "") -> Message:
        if not message.destination:
            raise ConfigError("destination", "a message needs a destination queue")
        if not isinstance(message.body, bytes | bytearray):
            raise ConfigError("body", f"message body must be bytes, not {type(message.body)}")
        if not message.message_id:
            message.message_id = f"{self._id_prefix}{next(self._id_counter):08x}"
        if not message.born_timestamp:
            message.born_timestamp = self._clock()
        if not message.born_host:
            message.born_host = self._host
        if transaction_id:
            message.transaction_id = transaction_id
        count = self.partitions_of(message.destination)
        if message.message_key:
            message.partition = partition_for_key(message.message_key, count)
        elif not 0 <= message.partition < count:
            message.partition = next(self._round_robin) % count
        return message

    def _ensure_sender(self) -> None:
        if self._sender is not None:
            return
        with self._sender_lock:
            if self._sender is None:
                self._sender = threading.Thread(
                    target=self._send_loop, daemon=True, name="omconnect-producer-sender"
                )
                self._sender.start()

    def _send_loop(self) -> None:
        while True:
            item = self._pending.get()
            if item is None:
                return
            work = [item]
            while len(work) < 1000:
                try:
                    more = self._pending.get_nowait()
                except queue_mod.Empty:
                    break
                if more is None:
                    self._pending.put(None)
                    break
                work.append(more)
            messages = [m for batch, _ in work for m in batch]
            try:
                results = self.send_batch(messages) if messages else []
            except Exception as exc:  # each waiter learns the outcome
                log.warning("async send of %d messages failed: %s", len(messages), exc)
                for _, future in work:
                    future.set_exception(exc)
                continue
            position = 0
            for batch, future in work:
                future.set_result(results[position : position + len(batch)])
                position += len(batch)

    def _check_loop(self, listener: CheckListener) -> None:
        while not self._closed.is_set():
            try:
                halves = self._backend.transaction_checks(
                    self.namespace, self.producer_group, max_wait_ms=1000
                )
            except OmConnectError as exc:
                log.warning("transaction check poll failed: %s", exc)
                self._closed.wait(1.0)
                continue
            for half in halves:
                self._resolve(listener, half)

    def _resolve(self, listener: CheckListener, half: HalfMessage) -> None:
        try:
            answer = listener(codec.decode(half.encoded))
        except Exception:
            log.exception("transaction check listener failed for %s", half.transaction_id)
            return
        if answer is not TransactionResolution.UNKNOWN:
            self._backend.end_transaction(
                self.namespace, half.transaction_id, answer is TransactionResolution.COMMIT
            )


class Transaction:
    """Half messages waiting for this process's decision."""

    def __init__(
        self, backend: BrokerApi, namespace: str, transaction_id: str, messages: list[Message]
    ) -> None:
        self._backend = backend
        self._namespace = namespace
        self.transaction_id = transaction_id
        self.messages = messages

    def commit(self) -> None:
        """Make the messages visible to consumers."""
        self._backend.end_transaction(self._namespace, self.transaction_id, True)

    def rollback(self) -> None:
        """Discard the messages."""
        self._backend.end_transaction(self._namespace, self.transaction_id, False)


def _chunks(
    indexes: list[int], messages: Sequence[Message], max_count: int, max_bytes: int
) -> list[list[int]]:
    """``indexes`` cut into runs of at most ``max_count`` messages whose bodies add up
    to at most ``max_bytes`` (a larger message gets a run of its own)."""
    chunks: list[list[int]] = []
    chunk: list[int] = []
    size = 0
    for i in indexes:
        body = len(messages[i].body)
        if chunk and (len(chunk) >= max_count or size + body > max_bytes):
            chunks.append(chunk)
            chunk, size = [], 0
        chunk.append(i)
        size += body
    if chunk:
        chunks.append(chunk)
    return chunks


def _group(messages: Sequence[Message]) -> dict[tuple[str, int, bool], list[int]]:
    """Indexes of messages per (queue, partition, delayed), in input order."""
    groups: dict[tuple[str, int, bool], list[int]] = {}
    for i, m in enumerate(messages):
        groups.setdefault((m.destination, m.partition, m.delay_time > 0), []).append(i)
    return groups
