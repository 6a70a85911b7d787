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
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait
from dataclasses import dataclass
from enum import Enum
from typing import NamedTuple

from omconnect import batch_codec, codec
from omconnect.broker.api import BrokerApi, HalfMessage
from omconnect.errors import ConfigError, OmConnectError, TimeoutError_
from omconnect.message import Message
from omconnect.partitioning import partition_for_key

log = logging.getLogger(__name__)


class SendResult(NamedTuple):
    """Where a message was stored (a named tuple: immutable, cheap to make)."""

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
        self._pending: queue_mod.SimpleQueue[_Work | object | None] = queue_mod.SimpleQueue()
        self._round_timeout_s = float(getattr(backend, "request_timeout", 30.0)) + 5.0
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
        routed = self._prepare(messages)
        results: list[SendResult | None] = [None] * len(routed)
        for (queue, partition, delayed), indexes in _group(routed).items():
            for chunk in _chunks(indexes, routed, self._max_batch, self._max_batch_bytes):
                offsets = self._store(queue, partition, delayed, [routed[i] for i in chunk])
                _fill(results, routed, chunk, queue, partition, offsets)
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
        routed = self._prepare(messages, transaction_id)
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

    def _prepare(self, messages: Sequence[Message], transaction_id: str = "") -> list[Message]:
        """Check ``messages`` and fill in what the producer sets: a message id, the
        born timestamp (one clock reading for the call) and host, the transaction id,
        and the partition (the key's, or round-robin unless a valid one is set).
        `ConfigError` for a message without a destination or with a non-bytes body."""
        now = self._clock()
        host, prefix, ids = self._host, self._id_prefix, self._id_counter
        counts: dict[str, int] = {}
        for message in messages:
            destination = message.destination
            if not destination:
                raise ConfigError("destination", "a message needs a destination queue")
            body = message.body
            if type(body) is not bytes and not isinstance(body, bytearray):
                raise ConfigError("body", f"message body must be bytes, not {type(body)}")
            if not message.message_id:
                message.message_id = f"{prefix}{next(ids):08x}"
            if not message.born_timestamp:
                message.born_timestamp = now
            if not message.born_host:
                message.born_host = host
            if transaction_id:
                message.transaction_id = transaction_id
            count = counts.get(destination)
            if count is None:
                count = counts[destination] = self.partitions_of(destination)
            if message.message_key:
                message.partition = partition_for_key(message.message_key, count)
            elif not 0 <= message.partition < count:
                message.partition = next(self._round_robin) % count
        return list(messages)

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
        """The sender thread: takes what is queued (up to `_ROUND_MESSAGES`) as one
        round, sends it without waiting (`_send_round`), and settles rounds in the
        order they were sent, in this thread (so the waiters' callbacks never run on
        a client's reader thread). At most `_MAX_ROUNDS` rounds are in flight; a
        flush marker (an empty batch) resolves once every round before it is settled."""
        rounds: deque[_Round] = deque()
        while True:
            self._settle(rounds, block=len(rounds) >= _MAX_ROUNDS)
            try:
                item = self._pending.get(timeout=_ROUND_CHECK_S if rounds else None)
            except queue_mod.Empty:
                continue
            work, stop = self._drain(item)
            real = [entry for entry in work if entry[0]]
            if real:
                rounds.append(self._start_round(real))
            markers = [future for batch, future in work if not batch]
            if markers or stop:
                while rounds:
                    self._settle(rounds, block=True)
                for marker in markers:
                    marker.set_result([])
            if stop:
                return

    def _drain(self, item: _Work | object | None) -> tuple[list[_Work], bool]:
        """``item`` and whatever else is queued, up to `_ROUND_MESSAGES` messages (a
        round of a few batches, so that the next is encoded while the broker stores
        this one), wake-ups left out; whether the stop sentinel was among them."""
        work: list[_Work] = []
        messages = 0
        while True:
            if item is None:
                return work, True
            if item is not _WAKE:
                work.append(item)  # type: ignore[arg-type]
                messages += len(item[0])  # type: ignore[index]
            if messages >= _ROUND_MESSAGES or len(work) >= 1000:
                return work, False
            try:
                item = self._pending.get_nowait()
            except queue_mod.Empty:
                return work, False

    def _start_round(self, work: list[_Work]) -> _Round:
        """Send the messages of ``work``; a failure to even send fails the round."""
        messages = [m for batch, _ in work for m in batch]
        try:
            sent = self._send_round(messages)
        except Exception as exc:
            sent = Future()
            sent.set_exception(exc)
        else:  # wake the sender when the round completes, to settle it promptly
            sent.add_done_callback(lambda _: self._pending.put(_WAKE))
        return _Round(work, sent, time.monotonic() + self._round_timeout_s)

    def _settle(self, rounds: deque[_Round], block: bool) -> None:
        """Resolve the waiters of the completed rounds at the front of ``rounds``;
        with ``block``, first wait for the oldest one (failing it with
        `TimeoutError_` past its deadline). A round past its deadline fails too."""
        while rounds:
            front = rounds[0]
            if block:
                wait([front.sent], timeout=max(0.0, front.deadline - time.monotonic()))
                block = False
            if not front.sent.done():
                if time.monotonic() < front.deadline:
                    return
                error: BaseException | None = TimeoutError_(
                    "no answer from the broker for an async send within "
                    f"{self._round_timeout_s:.1f} s"
                )
            else:
                error = front.sent.exception()
            rounds.popleft()
            if error is not None:
                count = sum(len(batch) for batch, _ in front.work)
                log.warning("async send of %d messages failed: %s", count, error)
                for _, future in front.work:
                    if future.set_running_or_notify_cancel():  # else the caller cancelled it
                        future.set_exception(error)
                continue
            results = front.sent.result()
            position = 0
            for batch, future in front.work:
                if future.set_running_or_notify_cancel():
                    future.set_result(results[position : position + len(batch)])
                position += len(batch)

    def _send_round(self, messages: list[Message]) -> Future[list[SendResult]]:
        """`send_batch` without waiting where the backend can (``append_batch_async``,
        the TCP client): batches (of one message too) are sent back to back, and the
        future completes when all are stored. Delayed messages, and everything for a
        backend without it (in-process), are sent and waited for at once. Raises
        what `_prepare` raises."""
        send_async = getattr(self._backend, "append_batch_async", None)
        routed = self._prepare(messages)
        results: list[SendResult | None] = [None] * len(routed)
        waiting: list[tuple[list[int], str, int, Future[int]]] = []
        done: Future[list[SendResult]] = Future()
        try:
            for (queue, partition, delayed), indexes in _group(routed).items():
                for chunk in _chunks(indexes, routed, self._max_batch, self._max_batch_bytes):
                    chunk_messages = [routed[i] for i in chunk]
                    if send_async is None or delayed:
                        offsets = self._store(queue, partition, delayed, chunk_messages)
                        _fill(results, routed, chunk, queue, partition, offsets)
                        continue
                    batch = batch_codec.encode_batch(chunk_messages)
                    sent = send_async(self.namespace, queue, partition, batch)
                    waiting.append((chunk, queue, partition, sent))
        except Exception as exc:
            done.set_exception(exc)  # the batches already sent may still be stored
            return done
        _when_all(waiting, results, routed, done)
        return done

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


_MAX_ROUNDS = 8  # async send rounds in flight before the sender waits for the oldest
_ROUND_MESSAGES = 400  # a round takes queued sends up to this many messages
_ROUND_CHECK_S = 0.5  # how often the sender looks for a round past its deadline
_WAKE = object()  # queued when a round completes: the sender settles it
_Work = tuple[list[Message], "Future[list[SendResult]]"]


@dataclass(slots=True)
class _Round:
    """Async sends taken by the sender at once: their waiters, the future of all
    their results (in order), and when to give up on it."""

    work: list[_Work]
    sent: Future[list[SendResult]]
    deadline: float


def _fill(
    results: list[SendResult | None],
    routed: Sequence[Message],
    chunk: list[int],
    queue: str,
    partition: int,
    offsets: Sequence[int],
) -> None:
    """Put the results of the messages ``chunk`` indexes, stored at ``offsets``."""
    made = map(  # tuple.__new__ in C: no Python-level constructor call per result
        tuple.__new__,
        itertools.repeat(SendResult),
        zip(
            [routed[i].message_id for i in chunk],
            itertools.repeat(queue),
            itertools.repeat(partition),
            offsets,
        ),
    )
    for i, result in zip(chunk, made, strict=True):
        results[i] = result


def _when_all(
    waiting: list[tuple[list[int], str, int, Future[int]]],
    results: list[SendResult | None],
    routed: Sequence[Message],
    done: Future[list[SendResult]],
) -> None:
    """Complete ``done`` with ``results`` once every batch in ``waiting`` (each
    giving its first offset) is stored, or with the first failure."""
    if not waiting:
        done.set_result([r for r in results if r is not None])
        return
    lock = threading.Lock()
    remaining = [len(waiting)]

    def one_done(_: Future[int]) -> None:
        with lock:
            remaining[0] -= 1
            if remaining[0]:
                return
        for chunk, queue, partition, sent in waiting:
            error = sent.exception()
            if error is not None:
                done.set_exception(error)
                return
            first = sent.result()
            _fill(results, routed, chunk, queue, partition, range(first, first + len(chunk)))
        done.set_result([r for r in results if r is not None])

    for *_, sent in waiting:
        sent.add_done_callback(one_done)


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
    sizes = [len(messages[i].body) for i in indexes]
    if len(indexes) <= max_count and sum(sizes) <= max_bytes:
        return [indexes]
    chunks: list[list[int]] = []
    chunk: list[int] = []
    total = 0
    for i, size in zip(indexes, sizes, strict=True):
        if chunk and (len(chunk) >= max_count or total + size > max_bytes):
            chunks.append(chunk)
            chunk, total = [], 0
        chunk.append(i)
        total += size
    if chunk:
        chunks.append(chunk)
    return chunks


def _group(messages: Sequence[Message]) -> dict[tuple[str, int, bool], list[int]]:
    """Indexes of messages per (queue, partition, delayed), in input order."""
    keys = [(m.destination, m.partition, m.delay_time > 0) for m in messages]
    if keys and keys.count(keys[0]) == len(keys):  # the common case: one partition
        return {keys[0]: list(range(len(keys)))}
    groups: dict[tuple[str, int, bool], list[int]] = {}
    for i, key in enumerate(keys):
        groups.setdefault(key, []).append(i)
    return groups
