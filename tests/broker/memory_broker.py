"""A dict-backed `BrokerApi` for the TCP server tests, until the real `Broker` is used.

Test-only and deliberately simple: no persistence, no retention, no expiry of
messages, no TTL expiry of keys, transaction checks offer every undecided half
message at once. It checks message CRCs like the real broker and raises the same
error classes, and its long polls block the calling thread like the real one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence

from omconnect import codec
from omconnect.broker.api import (
    BrokerApi,
    HalfMessage,
    KeyValue,
    KvEvent,
    QueueInfo,
    ReadResult,
    StoredMessage,
)
from omconnect.errors import AlreadyExistsError, ConfigError, MessageTooLargeError, NotFoundError

MAX_MESSAGE_BYTES = 4 << 20


def _now_ms() -> int:
    return int(time.time() * 1000)


class MemoryBroker(BrokerApi):
    """Every `BrokerApi` operation on dicts under one condition variable."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._namespaces: set[str] = set()
        self._queues: dict[tuple[str, str], int] = {}
        self._logs: dict[tuple[str, str, int], list[StoredMessage]] = {}
        self._offsets: dict[tuple[str, str, str], dict[int, int]] = {}
        self._half: dict[tuple[str, str], list[tuple[str, HalfMessage]]] = {}
        self._kv: dict[tuple[str, str], KeyValue] = {}
        self._kv_events: list[tuple[str, KvEvent]] = []
        self._revision = 0

    # -- resources -------------------------------------------------------------------
    def create_namespace(self, namespace: str) -> None:
        if not namespace:
            raise ConfigError("namespace", "must not be empty")
        with self._cond:
            self._namespaces.add(namespace)

    def delete_namespace(self, namespace: str) -> None:
        with self._cond:
            self._require_namespace(namespace)
            self._namespaces.discard(namespace)
            for key in [k for k in self._queues if k[0] == namespace]:
                del self._queues[key]

    def list_namespaces(self) -> list[str]:
        with self._cond:
            return sorted(self._namespaces)

    def create_queue(self, namespace: str, queue: str, partitions: int) -> QueueInfo:
        if partitions < 1:
            raise ConfigError("partitions", f"must be at least 1, not {partitions}")
        with self._cond:
            self._namespaces.add(namespace)
            old = self._queues.get((namespace, queue), 0)
            if partitions < old:
                raise AlreadyExistsError(f"queue {queue} has {old} partitions already")
            self._queues[(namespace, queue)] = partitions
            for p in range(partitions):
                self._logs.setdefault((namespace, queue, p), [])
            return QueueInfo(namespace, queue, partitions)

    def delete_queue(self, namespace: str, queue: str) -> None:
        with self._cond:
            self._partitions(namespace, queue)
            del self._queues[(namespace, queue)]

    def list_queues(self, namespace: str) -> list[QueueInfo]:
        with self._cond:
            self._require_namespace(namespace)
            return [
                QueueInfo(ns, q, n)
                for (ns, q), n in sorted(self._queues.items())
                if ns == namespace
            ]

    def queue_info(self, namespace: str, queue: str) -> QueueInfo:
        with self._cond:
            return QueueInfo(namespace, queue, self._partitions(namespace, queue))

    # -- produce ---------------------------------------------------------------------
    def append(
        self, namespace: str, queue: str, partition: int, messages: Sequence[bytes]
    ) -> list[int]:
        self._check(messages)
        now = _now_ms()
        with self._cond:
            log = self._log(namespace, queue, partition)
            first = len(log)
            log.extend(StoredMessage(partition, first + i, now, m) for i, m in enumerate(messages))
            self._cond.notify_all()
            return list(range(first, first + len(messages)))

    def append_delayed(
        self,
        namespace: str,
        queue: str,
        partition: int,
        messages: Sequence[bytes],
        deliver_at: Sequence[int],
    ) -> None:
        if len(deliver_at) != len(messages):
            raise ConfigError("deliver_at", "needs one time per message")
        self.append(namespace, queue, partition, messages)  # delivered at once: a test stand-in

    # -- transactions ----------------------------------------------------------------
    def prepare(
        self,
        namespace: str,
        producer_group: str,
        transaction_id: str,
        queue: str,
        partition: int,
        messages: Sequence[bytes],
    ) -> None:
        self._check(messages)
        with self._cond:
            self._log(namespace, queue, partition)
            halves = self._half.setdefault((namespace, transaction_id), [])
            for m in messages:
                halves.append(
                    (producer_group, HalfMessage(transaction_id, queue, partition, m, _now_ms()))
                )
            self._cond.notify_all()

    def end_transaction(self, namespace: str, transaction_id: str, commit: bool) -> None:
        with self._cond:
            halves = self._half.pop((namespace, transaction_id), [])
        if commit:
            for _, h in halves:
                self.append(namespace, h.queue, h.partition, [h.encoded])

    def transaction_checks(
        self, namespace: str, producer_group: str, max_wait_ms: int
    ) -> list[HalfMessage]:
        deadline = time.monotonic() + max_wait_ms / 1000
        with self._cond:
            while True:
                found = [
                    h
                    for (ns, _), halves in self._half.items()
                    if ns == namespace
                    for group, h in halves
                    if group == producer_group
                ]
                left = deadline - time.monotonic()
                if found or left <= 0:
                    return found
                self._cond.wait(left)

    # -- consume ---------------------------------------------------------------------
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
        deadline = time.monotonic() + max_wait_ms / 1000
        with self._cond:
            while True:
                log = self._log(namespace, queue, partition)
                start = max(offset, 0)
                left = deadline - time.monotonic()
                if start < len(log) or left <= 0:
                    break
                self._cond.wait(left)
            out: list[StoredMessage] = []
            size = 0
            for m in log[start : start + max_messages]:
                if out and size + len(m.encoded) > max_bytes:
                    break
                out.append(m)
                size += len(m.encoded)
            return ReadResult(out, start + len(out))

    def offset_range(self, namespace: str, queue: str, partition: int) -> tuple[int, int]:
        with self._cond:
            return 0, len(self._log(namespace, queue, partition))

    def commit_offsets(
        self, namespace: str, group: str, queue: str, offsets: dict[int, int]
    ) -> None:
        with self._cond:
            self._partitions(namespace, queue)
            self._offsets.setdefault((namespace, group, queue), {}).update(offsets)

    def committed_offsets(self, namespace: str, group: str, queue: str) -> dict[int, int]:
        with self._cond:
            return dict(self._offsets.get((namespace, group, queue), {}))

    # -- key-value store -------------------------------------------------------------
    def kv_get(self, namespace: str, key: str) -> KeyValue | None:
        with self._cond:
            return self._kv.get((namespace, key))

    def kv_put(self, namespace: str, key: str, value: bytes, ttl_ms: int = 0) -> int:
        with self._cond:
            return self._put(namespace, key, value, ttl_ms)

    def kv_cas(
        self, namespace: str, key: str, value: bytes, expected_revision: int, ttl_ms: int = 0
    ) -> int | None:
        with self._cond:
            current = self._kv.get((namespace, key))
            if (current.revision if current else 0) != expected_revision:
                return None
            return self._put(namespace, key, value, ttl_ms)

    def kv_delete(self, namespace: str, key: str, expected_revision: int = -1) -> bool:
        with self._cond:
            current = self._kv.get((namespace, key))
            if current is None or expected_revision not in (-1, current.revision):
                return False
            del self._kv[(namespace, key)]
            self._revision += 1
            self._kv_events.append((namespace, KvEvent("delete", key, b"", self._revision)))
            self._cond.notify_all()
            return True

    def kv_list(self, namespace: str, prefix: str) -> list[KeyValue]:
        with self._cond:
            return sorted(
                (
                    kv
                    for (ns, k), kv in self._kv.items()
                    if ns == namespace and k.startswith(prefix)
                ),
                key=lambda kv: kv.key,
            )

    def kv_watch(
        self, namespace: str, prefix: str, from_revision: int, max_wait_ms: int
    ) -> tuple[list[KvEvent], int]:
        deadline = time.monotonic() + max_wait_ms / 1000
        with self._cond:
            while True:
                events = [
                    e
                    for ns, e in self._kv_events
                    if ns == namespace and e.key.startswith(prefix) and e.revision >= from_revision
                ]
                left = deadline - time.monotonic()
                if events or left <= 0:
                    return events, max(from_revision, self._revision + 1)
                self._cond.wait(left)

    def close(self) -> None:
        with self._cond:
            self._cond.notify_all()

    # -- helpers ---------------------------------------------------------------------
    def _put(self, namespace: str, key: str, value: bytes, ttl_ms: int) -> int:
        self._revision += 1
        old = self._kv.get((namespace, key))
        expires = _now_ms() + ttl_ms if ttl_ms > 0 else 0
        created = old.create_revision if old else self._revision
        self._kv[(namespace, key)] = KeyValue(key, value, self._revision, created, expires)
        self._kv_events.append((namespace, KvEvent("put", key, value, self._revision)))
        self._cond.notify_all()
        return self._revision

    def _check(self, messages: Sequence[bytes]) -> None:
        for m in messages:
            if len(m) > MAX_MESSAGE_BYTES:
                raise MessageTooLargeError(f"message of {len(m)} bytes > {MAX_MESSAGE_BYTES}")
            codec.verify(m)

    def _require_namespace(self, namespace: str) -> None:
        if namespace not in self._namespaces:
            raise NotFoundError(f"namespace {namespace!r} does not exist")

    def _partitions(self, namespace: str, queue: str) -> int:
        n = self._queues.get((namespace, queue))
        if n is None:
            raise NotFoundError(f"queue {namespace}/{queue} does not exist")
        return n

    def _log(self, namespace: str, queue: str, partition: int) -> list[StoredMessage]:
        n = self._partitions(namespace, queue)
        if not 0 <= partition < n:
            raise NotFoundError(f"queue {namespace}/{queue} has no partition {partition}")
        return self._logs[(namespace, queue, partition)]
